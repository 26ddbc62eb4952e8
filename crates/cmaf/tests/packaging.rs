//! Integration tests on real ffmpeg output (see `tests/assets/README.md`),
//! built as one test binary.

mod packaging {
    pub mod util;

    mod capture;
    mod ffprobe;
    mod hostile;
    mod manifest;
    mod samples;
}
