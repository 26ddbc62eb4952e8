//! Per-sample reading on the real ladder capture: `chunk_samples` lists what
//! ffprobe lists (`-show_packets`), sample by sample, and the decoder
//! configurations are the bytes of the init segments. Set
//! `CMAF_SKIP_FFPROBE=1` to skip the ffprobe comparisons.

use std::process::Command;

use cmaf::{
    chunk_samples, parse_init, parse_moof, parse_samples, CmafError, DecoderConfig, InvalidMessage,
    PeerMisbehaved, TrackKind,
};

use super::util::{asset, segment, Output};

fn skip_ffprobe() -> bool {
    std::env::var_os("CMAF_SKIP_FFPROBE").is_some_and(|v| v == "1")
}

/// `(dts, pts, duration, size, keyframe)` of every packet ffprobe finds in an
/// asset; duration is `None` where ffprobe prints `N/A`.
fn ffprobe_packets(name: &str) -> Vec<(u64, i64, Option<u64>, usize, bool)> {
    let dir = std::env::var("CMAF_ASSETS_DIR")
        .unwrap_or_else(|_| format!("{}/tests/assets", env!("CARGO_MANIFEST_DIR")));
    let out = Command::new(std::env::var("FFPROBE").unwrap_or_else(|_| "ffprobe".into()))
        .args(["-v", "error", "-show_packets", "-show_entries"])
        .arg("packet=dts,pts,duration,size,flags")
        .args(["-of", "csv=p=0"])
        .arg(format!("{dir}/{name}"))
        .output()
        .expect("run ffprobe (install ffmpeg, or set CMAF_SKIP_FFPROBE=1)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            // csv order is the packet section's: pts,dts,duration,size,flags.
            let f: Vec<&str> = line.split(',').collect();
            (
                f[1].parse().unwrap(),
                f[0].parse().unwrap(),
                f[2].parse().ok(),
                f[3].parse().unwrap(),
                f[4].starts_with('K'),
            )
        })
        .collect()
}

/// The payload length of the chunk's (last) mdat.
fn mdat_payload_len(chunk: &[u8]) -> usize {
    let mut at = 0;
    let mut last = 0;
    while at + 8 <= chunk.len() {
        let size = u32::from_be_bytes(chunk[at..at + 4].try_into().unwrap()) as usize;
        if &chunk[at + 4..at + 8] == b"mdat" {
            last = size - 8;
        }
        at += size;
    }
    last
}

fn check_chunks(name: &str, kind: TrackKind, out: &Output) {
    let info = out.info();
    let mut next_decode_time = 0;
    for c in &out.chunks {
        let samples = chunk_samples(&c.bytes, &info.defaults).unwrap();
        assert_eq!(
            samples.len(),
            c.samples as usize,
            "{name} chunk {}",
            c.start
        );
        // Their sizes cover the whole mdat payload, and each slice has its size.
        let total: usize = samples.iter().map(|s| s.data.len()).sum();
        assert_eq!(
            total,
            mdat_payload_len(&c.bytes),
            "{name} chunk {}",
            c.start
        );
        assert!(samples
            .iter()
            .all(|s| s.data.len() == s.sample.size as usize));
        // Contiguous in decode time, within and across chunks.
        assert_eq!(samples[0].sample.decode_time, c.start);
        assert_eq!(c.start, next_decode_time, "{name}: gap before {}", c.start);
        for s in &samples {
            assert_eq!(s.sample.decode_time, next_decode_time);
            next_decode_time += u64::from(s.sample.duration);
        }
        assert_eq!(next_decode_time, c.start + c.duration);
        // Only the first sample of a video segment is a sync sample (GOP 4 s).
        for (i, s) in samples.iter().enumerate() {
            let expected = kind == TrackKind::Audio || (c.index == 0 && i == 0);
            assert_eq!(
                s.sample.is_sync, expected,
                "{name} chunk {} sample {i}",
                c.start
            );
        }
        // x264 -tune zerolatency: no B-frames, no composition offsets.
        assert!(samples.iter().all(|s| s.sample.composition_offset == 0));
        assert!(samples.iter().all(|s| !s.data.is_empty()));

        // parse_samples on the moof alone says the same, and agrees with parse_moof.
        let moof_at = c.bytes.len() - mdat_payload_len(&c.bytes) - 8;
        let moof_len = samples[0].sample.data_offset as usize - 8;
        let moof = &c.bytes[moof_at - moof_len..moof_at];
        let listed = parse_samples(moof, &info.defaults).unwrap();
        assert_eq!(listed, samples.iter().map(|s| s.sample).collect::<Vec<_>>());
        let fragment = parse_moof(moof, &info.defaults).unwrap();
        assert_eq!(fragment.sample_count as usize, listed.len());
        assert_eq!(fragment.data_start, listed[0].data_offset);
        let last = listed.last().unwrap();
        assert_eq!(fragment.data_end, last.data_offset + u64::from(last.size));
    }
}

#[test]
fn chunk_samples_on_the_ladder() {
    for (name, kind, count) in [
        ("ladder_v720.mp4", TrackKind::Video, 360),
        ("ladder_v400.mp4", TrackKind::Video, 360),
        ("ladder_audio.mp4", TrackKind::Audio, 564),
    ] {
        let out = segment(kind, &asset(name));
        check_chunks(name, kind, &out);
        let samples: usize = out.chunks.iter().map(|c| c.samples as usize).sum();
        assert_eq!(samples, count, "{name}");
        // The video chunks are 15 frames of 512 ticks (30 fps at 15360).
        if kind == TrackKind::Video {
            for c in &out.chunks {
                let s = chunk_samples(&c.bytes, &out.info().defaults).unwrap();
                assert!(s.iter().all(|s| s.sample.duration == 512));
                assert_eq!(s.len(), 15);
            }
        }
    }
}

#[test]
fn chunk_samples_match_ffprobe_packets() {
    if skip_ffprobe() {
        return;
    }
    for (name, kind) in [
        ("ladder_v400.mp4", TrackKind::Video),
        ("ladder_v720.mp4", TrackKind::Video),
        ("ladder_audio.mp4", TrackKind::Audio),
    ] {
        let out = segment(kind, &asset(name));
        let ours: Vec<_> = out
            .chunks
            .iter()
            .flat_map(|c| chunk_samples(&c.bytes, &out.info().defaults).unwrap())
            .map(|s| {
                let t = s.sample.decode_time;
                (
                    t,
                    t as i64 + i64::from(s.sample.composition_offset),
                    u64::from(s.sample.duration),
                    s.data.len(),
                    s.sample.is_sync,
                )
            })
            .collect();
        let theirs = ffprobe_packets(name);
        assert_eq!(ours.len(), theirs.len(), "{name}: packet count");
        for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(
                (o.0, o.1, o.3, o.4),
                (t.0, t.1, t.3, t.4),
                "{name} packet {i}"
            );
            // ffprobe 5.1 gives the first AAC packet no duration, and the
            // last one 1024 where the trun says 512 (see the assets README).
            if kind == TrackKind::Audio && i == theirs.len() - 1 {
                assert_eq!(o.2, 512, "{name} last packet duration");
            } else if let Some(d) = t.2 {
                assert_eq!(o.2, d, "{name} packet {i} duration");
            }
        }
    }
}

#[test]
fn a_whole_segment_and_a_whole_file_list_their_samples() {
    let data = asset("ladder_v400.mp4");
    let out = segment(TrackKind::Video, &data);
    let defaults = out.info().defaults;
    // Segment 1 = its 8 chunks: 120 frames from 4 s, one keyframe.
    let segment_bytes = &out.segment_file(1)[out.init.as_ref().unwrap().0.len()..];
    let samples = chunk_samples(segment_bytes, &defaults).unwrap();
    assert_eq!(samples.len(), 120);
    assert_eq!(samples[0].sample.decode_time, 4 * 15360);
    assert_eq!(samples.iter().filter(|s| s.sample.is_sync).count(), 1);
    // The whole file, ftyp moov ... mfra: the init boxes and mfra are skipped.
    let all = chunk_samples(&data, &defaults).unwrap();
    assert_eq!(all.len(), 360);
}

#[test]
fn decoder_configs_are_the_init_segment_bytes() {
    // The avcC payload as ffmpeg wrote it (found by hand in the file).
    let data = asset("ladder_v400.mp4");
    let at = data.windows(4).position(|w| w == b"avcC").unwrap();
    let size = u32::from_be_bytes(data[at - 4..at].try_into().unwrap()) as usize;
    let avcc = &data[at + 4..at - 4 + size];
    let out = segment(TrackKind::Video, &data);
    let init = &out.init.as_ref().unwrap().0;
    let info = parse_init(init).unwrap();
    assert_eq!(&info, out.info());
    let config = info.decoder_config.as_ref().unwrap();
    assert_eq!(config, &DecoderConfig::Avc(avcc.to_vec().into()));
    // configurationVersion 1, High profile, level 2.1; 4-byte NAL lengths.
    assert_eq!(config.bytes()[..4], [1, 0x64, 0x00, 0x15]);
    assert_eq!(config.nal_length_size(), Some(4));

    // AAC LC, 48 kHz, stereo, with the SBR sync extension ffmpeg appends
    // (ffprobe -show_data shows the same 5 bytes of extradata).
    let out = segment(TrackKind::Audio, &asset("ladder_audio.mp4"));
    let config = out.info().decoder_config.as_ref().unwrap();
    assert_eq!(
        config,
        &DecoderConfig::Aac(vec![0x11, 0x90, 0x56, 0xe5, 0x00].into())
    );
    assert_eq!(config.nal_length_size(), None);
    let info = parse_init(&out.init.as_ref().unwrap().0).unwrap();
    assert_eq!(&info, out.info());
}

#[test]
fn parse_init_needs_exactly_one_moov() {
    let out = segment(TrackKind::Audio, &asset("ladder_audio.mp4"));
    let init = out.init.as_ref().unwrap().0.to_vec();
    let ftyp_len = u32::from_be_bytes(init[..4].try_into().unwrap()) as usize;
    // The moov alone is fine too.
    assert!(parse_init(&init[ftyp_len..]).is_ok());
    assert_eq!(
        parse_init(&init[..ftyp_len]),
        Err(CmafError::InvalidMessage(InvalidMessage::MissingBox {
            parent: "init segment",
            child: "moov"
        }))
    );
    let mut twice = init.clone();
    twice.extend_from_slice(&init[ftyp_len..]);
    assert!(matches!(
        parse_init(&twice),
        Err(CmafError::PeerMisbehaved(
            PeerMisbehaved::UnexpectedBox { .. }
        ))
    ));
    for len in 0..init.len() {
        assert!(parse_init(&init[..len]).is_err(), "init[..{len}]");
    }
}
