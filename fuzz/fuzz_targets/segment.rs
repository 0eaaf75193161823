//! Hostile shared memory: overwrite a live queue's header, state and ring
//! with arbitrary bytes, then use it. See `procq::__fuzzing::segment`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    procq::__fuzzing::segment(data);
});
