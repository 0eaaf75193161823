//! [`Target`]: the functions a [`Process`](crate::Process) can run, and the
//! hash that identifies one across the parent and its child.

#[cfg(doc)]
use crate::Process;

/// A function a [`Process`] can run: any non-capturing function or closure
/// of up to 6 arguments, given as a tuple (`()`, `(a,)`, `(a, b)`, …).
///
/// Implemented for every `F: Fn(A1, .., An) -> R + Copy + Send + 'static`;
/// [`Process::new`] additionally requires `F` to be zero-sized (a function
/// item or a closure that captures nothing), which is checked at compile
/// time.
///
/// ```
/// fn add(a: u32, b: u32) -> u32 { a + b }
/// assert_eq!(procq_process::Target::call(add, (2, 3)), 5);
/// ```
pub trait Target<Args, R>: Copy + Send + 'static {
    /// Calls the function with the arguments unpacked from the tuple.
    fn call(self, args: Args) -> R;
}

macro_rules! impl_target {
    ($($arg:ident),*) => {
        impl<Func, Ret, $($arg,)*> Target<($($arg,)*), Ret> for Func
        where
            Func: Fn($($arg),*) -> Ret + Copy + Send + 'static,
        {
            #[allow(non_snake_case, clippy::unused_unit)]
            fn call(self, ($($arg,)*): ($($arg,)*)) -> Ret {
                self($($arg),*)
            }
        }
    };
}
impl_target!();
impl_target!(A1);
impl_target!(A1, A2);
impl_target!(A1, A2, A3);
impl_target!(A1, A2, A3, A4);
impl_target!(A1, A2, A3, A4, A5);
impl_target!(A1, A2, A3, A4, A5, A6);

/// FNV-1a of the type names of target, arguments and return value: the
/// child refuses an entry whose hash differs from what its parent sent.
pub(crate) fn signature<F, Args, R>() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for name in [
        std::any::type_name::<F>(),
        std::any::type_name::<Args>(),
        std::any::type_name::<R>(),
    ] {
        for b in name.bytes().chain([0]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_differ_by_type() {
        assert_ne!(
            signature::<fn(u32), (u32,), ()>(),
            signature::<fn(u64), (u64,), ()>()
        );
        assert_eq!(
            signature::<fn(u32), (u32,), ()>(),
            signature::<fn(u32), (u32,), ()>()
        );
    }
}
