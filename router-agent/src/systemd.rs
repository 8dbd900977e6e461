//! sd_notify(3) for a `Type=notify` unit (`dist/router-agent.service`): one datagram per
//! state change to `$NOTIFY_SOCKET`. Hand-written (a few lines; no crate needed): the
//! protocol is newline-separated `KEY=VALUE` pairs.
//!
//! ```text
//!   READY=1      the XDP program is attached, the FIB programmed, the control socket up
//!   RELOADING=1  a reload (or `router-agent restart`, before the re-exec) is under way;
//!                READY=1 again when it is over
//!   STOPPING=1   the event loop ended: a stop or a planned restart is being carried out
//! ```
//!
//! Without `$NOTIFY_SOCKET` (not under systemd) every call does nothing.

use std::{
    ffi::OsString,
    os::unix::net::{SocketAddr, UnixDatagram},
    sync::atomic::{AtomicBool, Ordering},
};

/// Logged at most once: a broken notification socket is one cause, not one per state change.
static SEND_FAILED_LOGGED: AtomicBool = AtomicBool::new(false);

/// The agent is up: XDP attached, FIB programmed, control socket serving.
pub fn ready(status: &str) {
    notify(&format!("READY=1\nSTATUS={status}"));
}

/// A reload (or an in-place restart) began; [`ready`] ends it.
pub fn reloading(status: &str) {
    notify(&format!("RELOADING=1\nSTATUS={status}"));
}

/// The agent is stopping (or leaving the datapath for a planned restart).
pub fn stopping(status: &str) {
    notify(&format!("STOPPING=1\nSTATUS={status}"));
}

/// Sends `state` to `$NOTIFY_SOCKET` if it is set. Failures are logged once, never fatal:
/// the router works the same without a service manager listening.
pub fn notify(state: &str) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(err) = send(&target, state)
        && !SEND_FAILED_LOGGED.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(
            socket = %target.to_string_lossy(),
            "cannot notify the service manager ({err}); it may consider the start failed"
        );
    }
}

fn send(target: &OsString, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = target.as_bytes();
    // `@name` is an abstract socket (systemd uses them in some set-ups), else a path.
    let address = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
        None if bytes.starts_with(b"/") => SocketAddr::from_pathname(target)?,
        None => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "NOTIFY_SOCKET is neither an absolute path nor @abstract",
            ));
        }
    };
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(state.as_bytes(), &address)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_socket_receives_the_state() {
        let dir = std::env::temp_dir().join(format!("hostrouter-notify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        send(&path.clone().into_os_string(), "READY=1\nSTATUS=ok").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=ok");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_abstract_socket_receives_the_state() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("hostrouter-notify-{}", std::process::id());
        let listener =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        send(&format!("@{name}").into(), "STOPPING=1").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn a_relative_socket_is_refused() {
        assert!(send(&"notify".into(), "READY=1").is_err());
    }
}
