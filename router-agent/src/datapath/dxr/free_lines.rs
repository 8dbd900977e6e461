//! A bit per arena line, set while the line is free: the free spans are its maximal runs of
//! set bits. It costs an eighth of a byte per line, where a tree of spans cost ~28 bytes per
//! span (and a bulk load under readers leaves tens of thousands of small spans).

/// Free lines below an allocator's bump pointer (bits at and above it stay clear).
#[derive(Debug, Default)]
pub(super) struct FreeLines {
    words: Vec<u64>,
}

/// Bits `from..to` (`from <= to <= 64`) of a word.
fn bits(from: u32, to: u32) -> u64 {
    let upper = u64::MAX.checked_shl(from).unwrap_or(0);
    let lower = u64::MAX.checked_shr(64 - to).unwrap_or(0);
    upper & lower
}

impl FreeLines {
    /// Room for lines below `end` (and a clear bit at `end`, which ends every run).
    pub fn cover(&mut self, end: u32) {
        let words = end as usize / 64 + 1;
        if self.words.len() < words {
            self.words.resize(words, 0);
        }
    }

    pub fn is_free(&self, line: u32) -> bool {
        self.words
            .get(line as usize / 64)
            .is_some_and(|word| word >> (line % 64) & 1 == 1)
    }

    /// Marks `start..end` free (`set`) or not.
    pub fn mark(&mut self, start: u32, end: u32, set: bool) {
        let mut line = start;
        while line < end {
            let (word, from) = (line as usize / 64, line % 64);
            let to = (end - (line - from)).min(64);
            let mask = bits(from, to);
            if set {
                self.words[word] |= mask;
            } else {
                self.words[word] &= !mask;
            }
            line += to - from;
        }
    }

    /// The first line of the free run that ends at `end` (`end` itself if line `end - 1` is
    /// not free).
    pub fn run_start(&self, end: u32) -> u32 {
        let mut at = end;
        while at > 0 {
            let (word, below) = ((at - 1) as usize / 64, (at - 1) % 64 + 1);
            let used = !self.words[word] & bits(0, below);
            if used != 0 {
                return word as u32 * 64 + (64 - used.leading_zeros());
            }
            at = word as u32 * 64;
        }
        0
    }

    /// The first line at or after `start` that is not free.
    pub fn run_end(&self, start: u32) -> u32 {
        let mut at = start;
        loop {
            let (word, from) = (at as usize / 64, at % 64);
            let Some(&bits_here) = self.words.get(word) else {
                return at;
            };
            let used = !bits_here & bits(from, 64);
            if used != 0 {
                return word as u32 * 64 + used.trailing_zeros();
            }
            at = (word as u32 + 1) * 64;
        }
    }

    /// Whether `start..start + lines` is a whole free run (not part of a longer one).
    pub fn is_run(&self, start: u32, lines: u32) -> bool {
        self.is_free(start)
            && (start == 0 || !self.is_free(start - 1))
            && self.run_end(start) == start + lines
    }

    /// The free runs below `end`, as (first line, lines).
    pub fn runs(&self, end: u32) -> impl Iterator<Item = (u32, u32)> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            while at < end {
                if self.is_free(at) {
                    let run_end = self.run_end(at);
                    let run = (at, run_end - at);
                    at = run_end;
                    return Some(run);
                }
                // Skip the rest of a word with no free line at once.
                let (word, from) = (at as usize / 64, at % 64);
                let free = self.words[word] & bits(from, 64);
                at = if free == 0 {
                    (word as u32 + 1) * 64
                } else {
                    word as u32 * 64 + free.trailing_zeros()
                };
            }
            None
        })
    }

    pub fn bytes(&self) -> usize {
        self.words.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_across_words() {
        let mut free = FreeLines::default();
        free.cover(300);
        free.mark(3, 5, true);
        free.mark(60, 200, true);
        free.mark(130, 131, false);
        assert_eq!(
            free.runs(300).collect::<Vec<_>>(),
            vec![(3, 2), (60, 70), (131, 69)]
        );
        assert_eq!(free.run_start(5), 3);
        assert_eq!(free.run_start(3), 3);
        assert_eq!(free.run_start(130), 60);
        assert_eq!(free.run_start(200), 131);
        assert_eq!(free.run_end(60), 130);
        assert_eq!(free.run_end(131), 200);
        assert_eq!(free.run_end(299), 299);
        assert!(free.is_run(60, 70) && free.is_run(131, 69));
        assert!(!free.is_run(61, 69) && !free.is_run(60, 69) && !free.is_run(0, 3));
        free.mark(0, 64 * 5, true);
        assert_eq!(free.run_start(64 * 5), 0);
        assert_eq!(free.runs(64 * 5).collect::<Vec<_>>(), vec![(0, 320)]);
    }
}
