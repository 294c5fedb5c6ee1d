//! Background threads that always report: named, and with panics caught and turned into errors.
//!
//! The app waits on its trainer, data loader and download threads through channels. A thread that
//! panicked would leave the window waiting forever (or showing a run as still going), so each one runs
//! its work under `catch_panic` and sends the panic as an ordinary error.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread::JoinHandle;

/// Start a named thread (rule: every thread has a name, for debuggers and panic messages).
pub fn spawn<F>(name: &str, work: F) -> std::io::Result<JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    std::thread::Builder::new().name(name.into()).spawn(work)
}

/// Run `work`, returning a panic's message as an error. The work's state is dropped with the panic,
/// never looked at again, so unwind safety is not a concern here.
pub fn catch_panic<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(work)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message() {
        assert_eq!(catch_panic(|| 7), Ok(7));
        assert_eq!(
            catch_panic(|| -> u8 { panic!("boom {}", 3) }),
            Err("boom 3".into())
        );
        assert_eq!(
            catch_panic(|| -> u8 { panic!("static") }),
            Err("static".into())
        );
    }
}
