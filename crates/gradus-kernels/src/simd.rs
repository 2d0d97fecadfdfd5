//! Runtime choice of instruction set. The workspace builds for baseline x86-64 (SSE2),
//! so that binaries run on any x86-64 CPU; the kernels' loops are written to vectorise,
//! and [`wide!`] compiles such a loop twice more, with AVX2 and with AVX-512 enabled (two
//! and four times the vector width), and runs the widest copy the CPU has. Every copy
//! does the same operations in the same order (no FMA contraction, sums kept in explicit
//! lanes), so results are bit-identical whichever runs.

/// `wide! { fn name(args) -> R { body } }` defines `name`, which runs `body` compiled for
/// AVX-512 or AVX2 when the CPU supports it and for the baseline otherwise. Arguments
/// must be concrete types (no generics).
macro_rules! wide {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn widest($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                fn wider($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    #[allow(unsafe_code)]
                    // SAFETY: `widest` only needs AVX-512F, which the CPU was just found
                    // to have.
                    return unsafe { widest($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    #[allow(unsafe_code)]
                    // SAFETY: `wider` only needs AVX2, which the CPU was just found to have.
                    return unsafe { wider($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

pub(crate) use wide;
