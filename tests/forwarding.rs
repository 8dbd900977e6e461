//! Integration tests: see below.
