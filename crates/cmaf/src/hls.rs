//! HLS playlists (RFC 8216, fMP4 segments) rendered from the same [`Manifest`] as the MPD, so
//! Safari and iOS players are served the very same CMAF segments, Periods and window as DASH
//! players.
//!
//! The playlists sit beside the MPD: the master playlist lists the video Representations (with
//! the first audio Representation as an `EXT-X-MEDIA` group) as `REP/index.m3u8`; a media
//! playlist lists the finished segments of one Representation in the time-shift buffer (not
//! [`Representation::in_progress`]), with URIs from the AdaptationSet's templates made
//! relative to `REP/`. A new Period (a republish) is an `EXT-X-DISCONTINUITY` with its own
//! `EXT-X-MAP`; an ended presentation gets `EXT-X-ENDLIST`.

use std::fmt::Write as _;
use std::time::Duration;

use crate::mpd::{AdaptationSet, ContentType, Format, Manifest, Period, Representation};

/// The master playlist, or `None` before any Representation has segments.
pub fn master(m: &Manifest) -> Option<String> {
    let period = m
        .periods
        .iter()
        .rev()
        .find(|p| reps(p).any(|(_, r)| !r.segments.is_empty()))?;
    let audio = reps(period)
        .find(|(set, _)| set.content_type == ContentType::Audio)
        .map(|(_, r)| r);
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    if let Some(a) = audio {
        let _ = writeln!(
            out,
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,URI=\"{}/index.m3u8\"",
            a.id
        );
    }
    let mut any = false;
    for (set, r) in reps(period) {
        let (
            ContentType::Video,
            Format::Video {
                width,
                height,
                frame_rate,
                ..
            },
        ) = (set.content_type, r.format)
        else {
            continue;
        };
        any = true;
        let mut codecs = r.codecs.clone();
        let mut bandwidth = u64::from(r.bandwidth);
        if let Some(a) = audio {
            codecs.push(',');
            codecs.push_str(&a.codecs);
            bandwidth += u64::from(a.bandwidth);
        }
        let _ = write!(out, "#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},CODECS=\"{codecs}\",RESOLUTION={width}x{height}");
        if let Some(fps) = frame_rate {
            let _ = write!(
                out,
                ",FRAME-RATE={:.3}",
                f64::from(fps.num) / f64::from(fps.den.max(1))
            );
        }
        if audio.is_some() {
            out.push_str(",AUDIO=\"audio\"");
        }
        let _ = writeln!(out, "\n{}/index.m3u8", r.id);
    }
    if !any {
        // Audio-only stream: the audio Representation is the variant.
        let a = audio?;
        let _ = writeln!(
            out,
            "#EXT-X-STREAM-INF:BANDWIDTH={},CODECS=\"{}\"\n{}/index.m3u8",
            a.bandwidth, a.codecs, a.id
        );
    }
    Some(out)
}

/// The media playlist of Representation `rep`, or `None` if it has no segments.
/// `segment_duration` is the nominal segment duration: `EXT-X-TARGETDURATION` is never
/// below it.
pub fn media(m: &Manifest, rep: &str, segment_duration: Duration) -> Option<String> {
    let mut body = String::new();
    let mut first = None;
    let mut max_secs = segment_duration.as_secs_f64();
    let mut periods = 0;
    for p in &m.periods {
        let Some((set, r)) = reps(p).find(|(_, r)| r.id == rep) else {
            continue;
        };
        let segments: Vec<_> = r
            .segments
            .iter()
            .filter(|s| m.in_time_shift_buffer(p, r, s))
            .collect();
        if segments.is_empty() {
            continue;
        }
        if periods > 0 {
            body.push_str("#EXT-X-DISCONTINUITY\n");
        }
        periods += 1;
        let _ = writeln!(
            body,
            "#EXT-X-MAP:URI=\"{}\"",
            uri(&set.initialization, &r.id, None)
        );
        for s in segments {
            first.get_or_insert(s.number);
            let secs = s.duration as f64 / f64::from(r.timescale.max(1));
            max_secs = max_secs.max(secs);
            let _ = writeln!(
                body,
                "#EXTINF:{secs:.3},\n{}",
                uri(&set.media, &r.id, Some(s.number))
            );
        }
    }
    let first = first?;
    let mut out = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:{first}\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n",
        max_secs.round() as u64
    );
    out.push_str(&body);
    if m.ended {
        out.push_str("#EXT-X-ENDLIST\n");
    }
    Some(out)
}

/// Every Representation of a Period, with its AdaptationSet.
fn reps(p: &Period) -> impl Iterator<Item = (&AdaptationSet, &Representation)> {
    p.adaptation_sets
        .iter()
        .flat_map(|set| set.representations.iter().map(move |r| (set, r)))
}

/// A SegmentTemplate (relative to the MPD) filled in for `rep`, relative to the media
/// playlist in `rep/`.
fn uri(template: &str, rep: &str, number: Option<u64>) -> String {
    let mut path = template.replace("$RepresentationID$", rep);
    if let Some(n) = number {
        path = path.replace("$Number$", &n.to_string());
    }
    match path.strip_prefix(rep).and_then(|p| p.strip_prefix('/')) {
        Some(inside) => inside.to_owned(),
        None => format!("../{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mpd::{FrameRate, SegmentRef};

    fn rep(
        id: &str,
        format: Format,
        codecs: &str,
        bandwidth: u32,
        segments: &[u64],
    ) -> Representation {
        Representation {
            id: id.into(),
            bandwidth,
            codecs: codecs.into(),
            timescale: 1000,
            presentation_time_offset: 0,
            format,
            segments: segments
                .iter()
                .map(|&n| SegmentRef {
                    number: n,
                    start: n * 4000,
                    duration: 4000,
                })
                .collect(),
            in_progress: Some(SegmentRef {
                number: 99,
                start: 0,
                duration: 4000,
            }),
        }
    }

    fn period(id: &str, segments: &[u64]) -> Period {
        let video = |side| Format::Video {
            width: side,
            height: side,
            frame_rate: Some(FrameRate {
                num: 30000,
                den: 1001,
            }),
            sar: (1, 1),
        };
        let mut v = AdaptationSet::new(0, ContentType::Video);
        v.initialization = format!("$RepresentationID$/init-{id}.mp4");
        v.representations = vec![
            rep("v720", video(720), "avc1.64001f", 1_500_000, segments),
            rep("v400", video(400), "avc1.640015", 500_000, segments),
        ];
        let mut a = AdaptationSet::new(1, ContentType::Audio);
        a.initialization = v.initialization.clone();
        a.representations = vec![rep(
            "a64",
            Format::Audio {
                sampling_rate: 48000,
                channels: 2,
            },
            "mp4a.40.2",
            64_000,
            segments,
        )];
        Period {
            id: id.into(),
            start: Duration::ZERO,
            adaptation_sets: vec![v, a],
            ..Default::default()
        }
    }

    #[test]
    fn master_lists_video_variants_with_the_audio_group() {
        let mut m = Manifest::new(0, 20_000);
        assert_eq!(master(&m), None);
        m.periods = vec![period("p0", &[0, 1])];
        let text = master(&m).unwrap();
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,URI=\"a64/index.m3u8\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=1564000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=720x720,FRAME-RATE=29.970,AUDIO=\"audio\"\nv720/index.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=564000,CODECS=\"avc1.640015,mp4a.40.2\",RESOLUTION=400x400,FRAME-RATE=29.970,AUDIO=\"audio\"\nv400/index.m3u8\n"
        );
        // Audio only.
        m.periods[0].adaptation_sets.remove(0);
        assert_eq!(
            master(&m).unwrap(),
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,URI=\"a64/index.m3u8\"\n\
             #EXT-X-STREAM-INF:BANDWIDTH=64000,CODECS=\"mp4a.40.2\"\na64/index.m3u8\n"
        );
    }

    #[test]
    fn media_playlist_spans_periods_and_leaves_out_the_segment_in_progress() {
        let mut m = Manifest::new(0, 20_000);
        let mut p1 = period("p1", &[5]);
        p1.start = Duration::from_secs(10);
        m.periods = vec![period("p0", &[0, 1]), p1];
        let text = media(&m, "v400", Duration::from_secs(4)).unwrap();
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-DISCONTINUITY-SEQUENCE:0\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-MAP:URI=\"init-p0.mp4\"\n#EXTINF:4.000,\n0.m4s\n#EXTINF:4.000,\n1.m4s\n\
             #EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"init-p1.mp4\"\n#EXTINF:4.000,\n5.m4s\n"
        );
        assert_eq!(media(&m, "nosuch", Duration::from_secs(4)), None);
        m.ended = true;
        assert!(media(&m, "a64", Duration::from_secs(4))
            .unwrap()
            .ends_with("5.m4s\n#EXT-X-ENDLIST\n"));
        // Windowed like the MPD: 10 minutes later only the second Period's segment is left.
        m.publish_time = 620_000;
        let text = media(&m, "v720", Duration::from_secs(4)).unwrap();
        assert!(
            text.contains("#EXT-X-MEDIA-SEQUENCE:5\n") && !text.contains("DISCONTINUITY\n#"),
            "{text}"
        );
    }

    #[test]
    fn uris_are_relative_to_the_representation() {
        assert_eq!(
            uri("$RepresentationID$/$Number$.m4s", "v720", Some(7)),
            "7.m4s"
        );
        assert_eq!(
            uri("$RepresentationID$/init-p0.mp4", "v720", None),
            "init-p0.mp4"
        );
        assert_eq!(
            uri("seg/$RepresentationID$-$Number$.m4s", "a", Some(1)),
            "../seg/a-1.m4s"
        );
    }
}
