//! Truncated, corrupted and garbage input: every parser and the segmenter
//! return errors (or ignore what they may ignore) and never panic.

use std::time::Duration;

use cmaf::{
    chunk_samples, parse_init, parse_moof, parse_moov, parse_samples, ApiMisuse, BoxSplitter,
    CmafError, InvalidMessage, PeerMisbehaved, Segmenter, SegmenterConfig, TrackKind,
};

use super::util::{asset, clock, SEGMENT};

/// A deterministic xorshift generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn be32(b: &[u8]) -> usize {
    u32::from_be_bytes(b[..4].try_into().unwrap()) as usize
}

/// The top-level boxes of a file: (type, range).
fn top_level(data: &[u8]) -> Vec<([u8; 4], std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 8 <= data.len() {
        let size = be32(&data[at..]);
        out.push((data[at + 4..at + 8].try_into().unwrap(), at..at + size));
        at += size;
    }
    out
}

/// Offsets of child boxes inside a payload, for the containers we parse.
fn header_skip(fourcc: &[u8; 4]) -> Option<usize> {
    match fourcc {
        b"moov" | b"trak" | b"mdia" | b"minf" | b"stbl" | b"mvex" | b"moof" | b"traf" | b"dinf" => {
            Some(0)
        }
        b"stsd" => Some(8),
        b"avc1" => Some(78),
        b"mp4a" => Some(28),
        _ => None,
    }
}

/// Every box in the tree: (type, start, end, ancestors' starts).
fn tree(
    data: &[u8],
    from: usize,
    to: usize,
    parents: &[usize],
    out: &mut Vec<([u8; 4], usize, usize, Vec<usize>)>,
) {
    let mut at = from;
    while at + 8 <= to {
        let size = be32(&data[at..]);
        let fourcc: [u8; 4] = data[at + 4..at + 8].try_into().unwrap();
        let end = at + size;
        out.push((fourcc, at, end, parents.to_vec()));
        if let Some(skip) = header_skip(&fourcc) {
            let mut p = parents.to_vec();
            p.push(at);
            tree(data, at + 8 + skip, end, &p, out);
        }
        at = end;
    }
}

/// `data` with the box at `start..end` cut to `keep` payload bytes and every
/// enclosing size fixed up, so the damage is inside a well-framed parent.
fn cut_inner(data: &[u8], start: usize, end: usize, parents: &[usize], keep: usize) -> Vec<u8> {
    let cut_at = start + 8 + keep;
    let removed = end - cut_at;
    let mut out = [&data[..cut_at], &data[end..]].concat();
    for &at in parents.iter().chain(std::iter::once(&start)) {
        let size = be32(&out[at..]) - removed;
        out[at..at + 4].copy_from_slice(&(size as u32).to_be_bytes());
    }
    out
}

fn init_and_first_moof(name: &str) -> (Vec<u8>, Vec<u8>) {
    let data = asset(name);
    let boxes = top_level(&data);
    let moov = boxes.iter().find(|b| &b.0 == b"moov").unwrap().1.clone();
    let moof = boxes.iter().find(|b| &b.0 == b"moof").unwrap().1.clone();
    (data[moov].to_vec(), data[moof].to_vec())
}

#[test]
fn moov_and_moof_truncated_anywhere_inside() {
    for name in ["ladder_v400.mp4", "ladder_audio.mp4"] {
        let (moov, moof) = init_and_first_moof(name);
        let info = parse_moov(&moov).unwrap();

        // Plain prefixes: the header no longer matches, always an error.
        for len in 0..moov.len() {
            assert!(parse_moov(&moov[..len]).is_err(), "{name} moov[..{len}]");
        }
        for len in 0..moof.len() {
            assert!(
                parse_moof(&moof[..len], &info.defaults).is_err(),
                "{name} moof[..{len}]"
            );
            assert!(
                parse_samples(&moof[..len], &info.defaults).is_err(),
                "{name} moof[..{len}]"
            );
        }

        // Truncations of each inner box, with the parents re-framed.
        for (data, is_moov) in [(&moov, true), (&moof, false)] {
            let mut boxes = Vec::new();
            tree(data, 0, data.len(), &[], &mut boxes);
            for (fourcc, start, end, parents) in boxes.iter().skip(1) {
                let payload = end - start - 8;
                let mut errors = 0;
                for keep in 0..payload {
                    let damaged = cut_inner(data, *start, *end, parents, keep);
                    let result = if is_moov {
                        parse_moov(&damaged).map(|_| ())
                    } else {
                        parse_moof(&damaged, &info.defaults).map(|_| ())
                    };
                    errors += usize::from(result.is_err());
                }
                let fourcc = String::from_utf8_lossy(fourcc);
                // The boxes we read must reject a truncation that removes
                // fields we use (their first bytes at least).
                if matches!(
                    &*fourcc,
                    "trak"
                        | "mdia"
                        | "minf"
                        | "stbl"
                        | "stsd"
                        | "mvex"
                        | "trex"
                        | "tkhd"
                        | "mdhd"
                        | "hdlr"
                        | "avcC"
                        | "esds"
                        | "traf"
                        | "tfhd"
                        | "tfdt"
                        | "trun"
                        | "mfhd"
                ) {
                    assert!(errors > 0, "{name}: truncating {fourcc} never failed");
                }
                if matches!(&*fourcc, "tfdt" | "trun" | "mfhd" | "trex" | "esds") {
                    assert_eq!(errors, payload, "{name}: {fourcc} truncations accepted");
                }
            }
        }
    }
}

#[test]
fn moov_and_moof_with_corrupted_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for name in ["ladder_v720.mp4", "ladder_audio.mp4", "cmaf_prft_160.mp4"] {
        let (moov, moof) = init_and_first_moof(name);
        let defaults = parse_moov(&moov).unwrap().defaults;
        // Every byte set to a few values.
        for data in [&moov, &moof] {
            for i in 0..data.len() {
                for v in [0x00, 0xff, 0x80, data[i] ^ 0x01] {
                    let mut d = data.clone();
                    d[i] = v;
                    let _ = parse_moov(&d);
                    let _ = parse_moof(&d, &defaults);
                    let _ = parse_samples(&d, &defaults);
                    let _ = parse_init(&d);
                }
            }
        }
        // Random multi-byte damage.
        for _ in 0..3000 {
            for data in [&moov, &moof] {
                let mut d = data.clone();
                for _ in 0..1 + rng.below(8) {
                    let i = rng.below(d.len());
                    d[i] = rng.next() as u8;
                }
                let _ = parse_moov(&d);
                let _ = parse_moof(&d, &defaults);
                let _ = parse_samples(&d, &defaults);
            }
        }
    }
    // Pure garbage.
    for len in 0..300 {
        let d: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = parse_moov(&d);
        let _ = parse_moof(&d, &Default::default());
        let _ = parse_samples(&d, &Default::default());
        let _ = chunk_samples(&d, &Default::default());
        let _ = parse_init(&d);
    }
}

#[test]
fn damaged_chunks_give_errors_or_in_bounds_samples() {
    let mut rng = Rng(7);
    for name in ["ladder_v400.mp4", "ladder_audio.mp4", "cmaf_prft_160.mp4"] {
        let data = asset(name);
        let boxes = top_level(&data);
        let moov = boxes.iter().find(|b| &b.0 == b"moov").unwrap().1.clone();
        let defaults = parse_moov(&data[moov]).unwrap().defaults;
        // The first chunk: from the first prft/moof to the end of its mdat.
        let first = boxes
            .iter()
            .position(|b| &b.0 == b"moof" || &b.0 == b"prft")
            .unwrap();
        let mdat = boxes.iter().position(|b| &b.0 == b"mdat").unwrap();
        let chunk = &data[boxes[first].1.start..boxes[mdat].1.end];
        let good = chunk_samples(chunk, &defaults).unwrap();
        assert!(!good.is_empty());
        for len in 0..chunk.len() {
            assert!(
                chunk_samples(&chunk[..len], &defaults).is_err(),
                "{name} [..{len}]"
            );
        }
        let moof_end = boxes[mdat].1.start - boxes[first].1.start;
        for _ in 0..5000 {
            let mut d = chunk.to_vec();
            for _ in 0..1 + rng.below(4) {
                // Mostly the boxes' headers and tables, where damage matters.
                let i = rng.below(moof_end + 8);
                d[i] = rng.next() as u8;
            }
            if let Ok(samples) = chunk_samples(&d, &defaults) {
                for s in samples {
                    assert_eq!(s.data.len(), s.sample.size as usize);
                }
            }
        }
    }
}

#[test]
fn box_splitter_on_garbage() {
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let len = rng.below(64);
        let d: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let mut s = BoxSplitter::with_max_box_size(1 << 20);
        s.push(&d);
        let mut n = 0;
        while let Some(item) = s.pop() {
            n += 1;
            assert!(n < 64, "pop must make progress");
            if item.is_err() {
                assert!(s.pop().is_none());
                break;
            }
        }
        assert!(s.buffered() <= len);
    }
}

fn run(config: &SegmenterConfig, data: &[u8]) -> Result<(), CmafError> {
    let mut seg = Segmenter::with_config(config.clone());
    for piece in data.chunks(3000) {
        seg.push(piece, clock())?;
        while seg.poll().is_some() {}
    }
    seg.finish()?;
    while seg.poll().is_some() {}
    Ok(())
}

#[test]
fn segmenter_on_damaged_streams() {
    let video = SegmenterConfig::new(TrackKind::Video, SEGMENT);
    let audio = SegmenterConfig::new(TrackKind::Audio, SEGMENT);
    let data = asset("ladder_v400.mp4");
    assert_eq!(run(&video, &data), Ok(()));

    // Truncated anywhere: either complete up to a box boundary, or an error.
    let boxes = top_level(&data);
    for cut in (0..data.len()).step_by(997) {
        let at_boundary = cut == 0 || boxes.iter().any(|b| b.1.end == cut && &b.0 == b"mdat");
        let r = run(&video, &data[..cut]);
        if !at_boundary {
            assert!(r.is_err(), "cut at {cut}");
        }
    }

    // Wrong kind.
    assert!(matches!(
        run(&audio, &data),
        Err(CmafError::PeerMisbehaved(
            PeerMisbehaved::KindMismatch { .. }
        ))
    ));

    // mdat before moof, and a moof without its mdat.
    let moov_end = boxes.iter().find(|b| &b.0 == b"moov").unwrap().1.end;
    let first_moof = boxes.iter().find(|b| &b.0 == b"moof").unwrap().1.clone();
    let first_mdat = boxes.iter().find(|b| &b.0 == b"mdat").unwrap().1.clone();
    let swapped = [
        &data[..moov_end],
        &data[first_mdat.clone()],
        &data[first_moof.clone()],
    ]
    .concat();
    assert!(matches!(
        run(&video, &swapped),
        Err(CmafError::PeerMisbehaved(
            PeerMisbehaved::UnexpectedBox { .. }
        ))
    ));
    let two_moofs = [&data[..first_moof.end], &data[first_moof.clone()]].concat();
    assert!(matches!(
        run(&video, &two_moofs),
        Err(CmafError::PeerMisbehaved(
            PeerMisbehaved::UnexpectedBox { .. }
        ))
    ));

    // A fragment from the past.
    let second_frag_end = boxes
        .iter()
        .filter(|b| &b.0 == b"mdat")
        .nth(1)
        .unwrap()
        .1
        .end;
    let replay = [
        &data[..second_frag_end],
        &data[first_moof.start..first_mdat.end],
    ]
    .concat();
    assert!(matches!(
        run(&video, &replay),
        Err(CmafError::PeerMisbehaved(
            PeerMisbehaved::NonMonotonic { .. }
        ))
    ));

    // An mdat shorter than the trun says.
    let mut short = data[..first_mdat.end].to_vec();
    let new_size = (first_mdat.len() - 100) as u32;
    short[first_mdat.start..first_mdat.start + 4].copy_from_slice(&new_size.to_be_bytes());
    short.truncate(first_mdat.end - 100);
    assert!(matches!(
        run(&video, &short),
        Err(CmafError::InvalidMessage(
            InvalidMessage::DataOutOfBounds { .. }
        ))
    ));

    // A second init segment.
    let reinit = [&data[..first_mdat.end], &data[..moov_end]].concat();
    assert!(matches!(
        run(&video, &reinit),
        Err(CmafError::PeerMisbehaved(
            PeerMisbehaved::UnexpectedBox { .. }
        ))
    ));

    // Errors are sticky, and push after finish is refused.
    let mut seg = Segmenter::new(TrackKind::Video, SEGMENT);
    let e = seg.push(&swapped, clock()).unwrap_err();
    assert_eq!(seg.push(&data, clock()), Err(e.clone()));
    assert_eq!(seg.finish(), Err(e));
    let mut seg = Segmenter::new(TrackKind::Video, SEGMENT);
    seg.finish().unwrap();
    assert_eq!(
        seg.push(&data, clock()),
        Err(CmafError::ApiMisuse(ApiMisuse::Finished))
    );

    // Random damage anywhere in the stream never panics.
    let mut rng = Rng(7);
    for _ in 0..300 {
        let mut d = data[..first_mdat.end + 20_000].to_vec();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(d.len());
            d[i] = rng.next() as u8;
        }
        let _ = run(&video, &d);
    }

    // Zero segment duration is refused once the timescale is known.
    let zero = SegmenterConfig::new(TrackKind::Video, Duration::ZERO);
    assert!(matches!(
        run(&zero, &data),
        Err(CmafError::InvalidMessage(
            InvalidMessage::InvalidValue { .. }
        ))
    ));
}

#[test]
fn video_before_the_first_keyframe_is_dropped() {
    let data = asset("ladder_v400.mp4");
    let boxes = top_level(&data);
    let moov_end = boxes.iter().find(|b| &b.0 == b"moov").unwrap().1.end;
    // Start the stream at the second fragment (no keyframe until 4 s).
    let second_moof = boxes
        .iter()
        .filter(|b| &b.0 == b"moof")
        .nth(1)
        .unwrap()
        .1
        .start;
    let late = [&data[..moov_end], &data[second_moof..]].concat();
    let mut seg = Segmenter::new(TrackKind::Video, SEGMENT);
    seg.push(&late, clock()).unwrap();
    seg.finish().unwrap();
    assert_eq!(seg.dropped_fragments(), 7);
    let mut segments = Vec::new();
    while let Some(e) = seg.poll() {
        if let cmaf::SegmenterEvent::SegmentEnd(s) = e {
            segments.push((s.segment, s.start));
        }
    }
    assert_eq!(segments, [(1, 61440), (2, 122880)]);
}
