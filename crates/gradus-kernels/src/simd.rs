//! Runtime choice of instruction set. The workspace builds for baseline x86-64 (SSE2),
//! so that binaries run on any x86-64 CPU; the kernels' loops are written to vectorise,
//! and [`avx2!`] compiles such a loop a second time with AVX2 enabled (twice the vector
//! width) and runs that copy when the CPU has it. Both copies do the same operations in
//! the same order (no FMA contraction), so results are bit-identical either way.

/// `avx2! { fn name(args) -> R { body } }` defines `name`, which runs `body` compiled for
/// AVX2 when the CPU supports it and for the baseline otherwise. Arguments must be
/// concrete types (no generics).
macro_rules! avx2 {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn wide($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    #[allow(unsafe_code)]
                    // SAFETY: `wide` only needs AVX2, which the CPU was just found to have.
                    return unsafe { wide($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

pub(crate) use avx2;
