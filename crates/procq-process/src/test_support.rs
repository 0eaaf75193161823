//! [`test_support!`](crate::test_support): `Process` in a test binary,
//! where libtest owns `main`.

use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use crate::child::{INITIALIZED, SAVED_STDOUT};
use crate::protocol::MARKER;

/// Name of the hidden test [`test_support!`](crate::test_support) defines.
pub(crate) const TEST_ENTRY: &str = "__procq_child";
/// Module path of the test file that used
/// [`test_support!`](crate::test_support), if any.
pub(crate) static TEST_MODULE: OnceLock<&'static str> = OnceLock::new();

/// Enables [`Process`](crate::Process) in an integration-test file run by libtest.
///
/// Use it once, at the root of the test file:
///
/// ```no_run
/// // tests/my_test.rs
/// procq_process::test_support!();
///
/// #[test]
/// fn runs_in_a_child() {
///     fn child() -> u32 {
///         std::process::id()
///     }
///     let mut p = procq_process::Process::spawn(child, ()).unwrap();
///     let limit = std::time::Duration::from_secs(10);
///     assert_ne!(p.join_timeout(limit).unwrap(), std::process::id());
/// }
/// # fn main() {}
/// ```
///
/// (A doc example cannot run libtest; `tests/lifecycle.rs` of this crate
/// is the working example.) `procq` re-exports it: `procq::test_support!()`
/// is the same macro.
///
/// It expands to two items:
/// - a hidden test `__procq_child` that calls [`init`](crate::init): children are started
///   as `<test binary> __procq_child --exact --nocapture --test-threads=1 -q`,
///   so libtest runs only that test, which runs the target;
/// - a constructor in `.init_array` (what the `ctor` crate does, in a few
///   lines) that tells procq, before libtest's `main` runs, that this binary
///   is a test binary, so that [`Process::start`](crate::Process::start) adds those arguments. It
///   stores a `&'static str` and, in a child, points stdout at `/dev/null`
///   until [`init`](crate::init) runs, to hide libtest's `running 1 test` header; no code
///   of the tests runs before `main`.
///
/// In a normal run `__procq_child` passes at once.
#[macro_export]
macro_rules! test_support {
    () => {
        #[test]
        fn __procq_child() {
            $crate::init();
        }

        #[used]
        #[unsafe(link_section = ".init_array")]
        static __PROCQ_TEST_SUPPORT: extern "C" fn() = {
            extern "C" fn __procq_test_support() {
                $crate::__enable_test_mode(::core::module_path!());
            }
            __procq_test_support
        };
    };
}

/// Called by [`test_support!`]'s constructor; not for direct use (public
/// only because the macro expands in the test file's crate).
#[doc(hidden)]
pub fn __enable_test_mode(module_path: &'static str) {
    let _ = TEST_MODULE.set(module_path);
    INITIALIZED.store(true, Ordering::SeqCst);
    if std::env::var_os(MARKER).is_some() {
        // A child: libtest will print its "running 1 test" header before
        // the dispatching test runs. Send that to /dev/null; `init` puts the
        // real stdout back before the target runs.
        // SAFETY: plain descriptor calls on descriptors this process owns.
        unsafe {
            let saved = libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3);
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if saved >= 0 && null >= 0 && libc::dup2(null, 1) == 1 {
                SAVED_STDOUT.store(saved, Ordering::SeqCst);
            } else if saved >= 0 {
                libc::close(saved);
            }
            if null >= 0 {
                libc::close(null);
            }
        }
    }
}
