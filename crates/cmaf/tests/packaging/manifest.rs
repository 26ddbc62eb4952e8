//! The MPD rendered from the real ladder's segments, parsed back with an XML
//! reader: required attributes, schema order, SegmentTimeline = segments,
//! end of stream, time-shift window, republish as a new Period, low latency.

use std::time::Duration;

use cmaf::{
    AdaptationSet, Addressing, ContentType, Format, FrameRate, LowLatency, Manifest, Period,
    Representation, SegmentRef, TrackKind, UtcTiming,
};
use roxmltree::{Document, Node};

use super::util::{asset, segment, Output};

const AST: u64 = 1_700_000_000_000;
const NS: &str = "urn:mpeg:dash:schema:mpd:2011";

struct Ladder {
    v720: Output,
    v400: Output,
    audio: Output,
}

fn ladder() -> Ladder {
    Ladder {
        v720: segment(TrackKind::Video, &asset("ladder_v720.mp4")),
        v400: segment(TrackKind::Video, &asset("ladder_v400.mp4")),
        audio: segment(TrackKind::Audio, &asset("ladder_audio.mp4")),
    }
}

fn rep(id: &str, out: &Output, bandwidth: u32) -> Representation {
    let mut r = Representation::from_track(id, out.info(), bandwidth);
    if let Format::Video { frame_rate, .. } = &mut r.format {
        *frame_rate = Some(FrameRate { num: 30, den: 1 });
    }
    r.segments = out.segments.iter().map(|&s| SegmentRef::from(s)).collect();
    r
}

fn period(id: &str, start: Duration, l: &Ladder) -> Period {
    let mut video = AdaptationSet::new(0, ContentType::Video);
    video.representations = vec![
        rep("v720", &l.v720, 1_500_000),
        rep("v400", &l.v400, 500_000),
    ];
    let mut audio = AdaptationSet::new(1, ContentType::Audio);
    audio.lang = Some("und".into());
    audio.representations = vec![rep("a", &l.audio, 64_000)];
    Period {
        id: id.into(),
        start,
        adaptation_sets: vec![video, audio],
        ..Default::default()
    }
}

fn manifest(l: &Ladder, publish_after: Duration) -> Manifest {
    let mut m = Manifest::new(AST, AST + publish_after.as_millis() as u64);
    m.utc_timing.push(UtcTiming::HttpIso(
        "https://example.test/time?a=1&b=2".into(),
    ));
    m.periods.push(period("p0", Duration::ZERO, l));
    m
}

fn child<'a, 'i: 'a>(node: Node<'a, 'i>, name: &'a str) -> Node<'a, 'i> {
    children(node, name)
        .next()
        .unwrap_or_else(|| panic!("<{}> has no <{name}>", node.tag_name().name()))
}

fn children<'a, 'i: 'a>(
    node: Node<'a, 'i>,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.children()
        .filter(move |n| n.is_element() && n.tag_name().name() == name)
}

fn attr<'a>(node: Node<'a, '_>, name: &str) -> &'a str {
    node.attribute(name)
        .unwrap_or_else(|| panic!("<{}> has no @{name}", node.tag_name().name()))
}

/// Expands a SegmentTemplate's timeline into (number, t, d), as a player does.
fn expand(template: Node<'_, '_>) -> Vec<(u64, u64, u64)> {
    let mut number: u64 = template
        .attribute("startNumber")
        .unwrap_or("1")
        .parse()
        .unwrap();
    let mut t = 0u64;
    let mut out = Vec::new();
    for s in children(child(template, "SegmentTimeline"), "S") {
        if let Some(st) = s.attribute("t") {
            t = st.parse().unwrap();
        }
        let d: u64 = attr(s, "d").parse().unwrap();
        let r: u64 = s.attribute("r").unwrap_or("0").parse().unwrap();
        for _ in 0..=r {
            out.push((number, t, d));
            number += 1;
            t += d;
        }
    }
    out
}

fn as_tuples(out: &Output) -> Vec<(u64, u64, u64)> {
    out.segments
        .iter()
        .map(|s| (s.segment, s.start, s.duration))
        .collect()
}

#[test]
fn live_mpd_has_the_required_attributes_and_matching_timelines() {
    let l = ladder();
    let xml = manifest(&l, Duration::from_millis(12_500))
        .render()
        .unwrap();
    let doc = Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let mpd = doc.root_element();
    assert_eq!(mpd.tag_name().namespace(), Some(NS));
    assert_eq!(mpd.tag_name().name(), "MPD");
    assert_eq!(attr(mpd, "type"), "dynamic");
    assert_eq!(
        attr(mpd, "profiles"),
        "urn:mpeg:dash:profile:isoff-live:2011"
    );
    assert_eq!(attr(mpd, "availabilityStartTime"), "2023-11-14T22:13:20Z");
    assert_eq!(attr(mpd, "publishTime"), "2023-11-14T22:13:32.500Z");
    assert_eq!(attr(mpd, "minimumUpdatePeriod"), "PT2S");
    assert_eq!(attr(mpd, "timeShiftBufferDepth"), "PT10M");
    assert_eq!(attr(mpd, "suggestedPresentationDelay"), "PT8S");
    assert_eq!(attr(mpd, "minBufferTime"), "PT4S");
    assert_eq!(attr(mpd, "maxSegmentDuration"), "PT4.096S");
    assert!(mpd.attribute("mediaPresentationDuration").is_none());

    // Schema order: Period(s) before UTCTiming.
    let names: Vec<_> = mpd
        .children()
        .filter(|n| n.is_element())
        .map(|n| n.tag_name().name())
        .collect();
    assert_eq!(names, ["Period", "UTCTiming"]);
    let utc = child(mpd, "UTCTiming");
    assert_eq!(attr(utc, "schemeIdUri"), "urn:mpeg:dash:utc:http-iso:2014");
    assert_eq!(attr(utc, "value"), "https://example.test/time?a=1&b=2");
    assert!(xml.contains("a=1&amp;b=2"), "escaped in the XML text");

    let p = child(mpd, "Period");
    assert_eq!((attr(p, "id"), attr(p, "start")), ("p0", "PT0S"));
    let sets: Vec<_> = children(p, "AdaptationSet").collect();
    assert_eq!(sets.len(), 2);

    // Video: both renditions, one shared SegmentTemplate.
    let v = sets[0];
    assert_eq!(attr(v, "contentType"), "video");
    assert_eq!(attr(v, "mimeType"), "video/mp4");
    assert_eq!(attr(v, "segmentAlignment"), "true");
    assert_eq!(attr(v, "startWithSAP"), "1");
    assert_eq!(attr(v, "maxWidth"), "720");
    assert_eq!(attr(v, "maxHeight"), "720");
    assert_eq!(attr(v, "maxFrameRate"), "30");
    assert_eq!(attr(v, "par"), "1:1");
    let order: Vec<_> = v
        .children()
        .filter(|n| n.is_element())
        .map(|n| n.tag_name().name())
        .collect();
    assert_eq!(
        order,
        [
            "Role",
            "SegmentTemplate",
            "Representation",
            "Representation"
        ]
    );
    let t = child(v, "SegmentTemplate");
    assert_eq!(attr(t, "timescale"), "15360");
    assert_eq!(attr(t, "presentationTimeOffset"), "0");
    assert_eq!(attr(t, "startNumber"), "0");
    assert_eq!(attr(t, "initialization"), "$RepresentationID$/init.mp4");
    assert_eq!(attr(t, "media"), "$RepresentationID$/$Number$.m4s");
    assert_eq!(expand(t), as_tuples(&l.v720));
    assert_eq!(expand(t), as_tuples(&l.v400));
    let s: Vec<_> = children(child(t, "SegmentTimeline"), "S").collect();
    assert_eq!(s.len(), 1, "three equal segments in one S@r");
    assert_eq!(
        (attr(s[0], "t"), attr(s[0], "d"), attr(s[0], "r")),
        ("0", "61440", "2")
    );
    let reps: Vec<_> = children(v, "Representation").collect();
    for (r, (id, bw, codecs, size)) in reps.iter().zip([
        ("v720", "1500000", "avc1.64001f", "720"),
        ("v400", "500000", "avc1.640015", "400"),
    ]) {
        assert_eq!(attr(*r, "id"), id);
        assert_eq!(attr(*r, "bandwidth"), bw);
        assert_eq!(attr(*r, "codecs"), codecs);
        assert_eq!(attr(*r, "width"), size);
        assert_eq!(attr(*r, "height"), size);
        assert_eq!(attr(*r, "frameRate"), "30");
        assert_eq!(attr(*r, "sar"), "1:1");
    }

    // Audio: the real channel count and rate, its own timeline.
    let a = sets[1];
    assert_eq!(attr(a, "contentType"), "audio");
    assert_eq!(attr(a, "mimeType"), "audio/mp4");
    assert_eq!(attr(a, "lang"), "und");
    let r = child(a, "Representation");
    assert_eq!(attr(r, "codecs"), "mp4a.40.2");
    assert_eq!(attr(r, "audioSamplingRate"), "48000");
    assert_eq!(attr(r, "bandwidth"), "64000");
    let acc = child(r, "AudioChannelConfiguration");
    assert_eq!(
        attr(acc, "schemeIdUri"),
        "urn:mpeg:dash:23003:3:audio_channel_configuration:2011"
    );
    assert_eq!(attr(acc, "value"), "2");
    let t = child(a, "SegmentTemplate");
    assert_eq!(attr(t, "timescale"), "48000");
    assert_eq!(expand(t), as_tuples(&l.audio));
    let s: Vec<_> = children(child(t, "SegmentTimeline"), "S").collect();
    assert_eq!(s.len(), 2);
    assert_eq!(
        s[1].attribute("t"),
        None,
        "contiguous: no t on the second S"
    );
}

#[test]
fn ended_mpd_stays_dynamic_with_a_duration_and_no_update_period() {
    let l = ladder();
    let mut m = manifest(&l, Duration::from_secs(13));
    m.ended = true;
    let xml = m.render().unwrap();
    let doc = Document::parse(&xml).unwrap();
    let mpd = doc.root_element();
    assert_eq!(attr(mpd, "type"), "dynamic");
    assert!(mpd.attribute("minimumUpdatePeriod").is_none());
    // The audio's last segment ends at 577024 / 48000 = 12.0213 s (rounded
    // up to the millisecond), after the video's 12 s.
    assert_eq!(attr(mpd, "mediaPresentationDuration"), "PT12.022S");
    assert_eq!(attr(mpd, "timeShiftBufferDepth"), "PT10M");
    let p = child(mpd, "Period");
    let v = child(p, "AdaptationSet");
    assert_eq!(expand(child(v, "SegmentTemplate")), as_tuples(&l.v720));
}

/// A recording: `type="static"` over every segment of both Periods (even those a live
/// window would have dropped), a SegmentTimeline of the real durations, no wall-clock or
/// live signalling, `mediaPresentationDuration` = the last Period's end.
#[test]
fn a_recording_is_static_with_every_segment_in_a_timeline() {
    let l = ladder();
    let mut m = Manifest::recording();
    // Live-only settings are ignored by a static MPD.
    m.utc_timing.clear();
    m.low_latency = Some(LowLatency {
        availability_time_offset: Duration::from_millis(3800),
        target_latency: Duration::from_millis(1500),
        min_latency: None,
        max_latency: None,
        playback_rate: None,
    });
    let mut first = period("p0", Duration::ZERO, &l);
    first.duration = Some(Duration::from_millis(12_022));
    first.producer_reference = true;
    let mut second = period("p1", Duration::from_millis(12_022), &l);
    for set in &mut second.adaptation_sets {
        for r in &mut set.representations {
            for s in &mut r.segments {
                s.number += 3;
            }
        }
    }
    m.periods = vec![first, second];
    let xml = m.render().unwrap();
    let doc = Document::parse(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    let mpd = doc.root_element();
    assert_eq!(attr(mpd, "type"), "static");
    assert_eq!(attr(mpd, "mediaPresentationDuration"), "PT24.044S");
    assert_eq!(attr(mpd, "minBufferTime"), "PT4S");
    for live_only in [
        "availabilityStartTime",
        "publishTime",
        "minimumUpdatePeriod",
        "timeShiftBufferDepth",
        "suggestedPresentationDelay",
    ] {
        assert!(mpd.attribute(live_only).is_none(), "{live_only}: {xml}");
    }
    for absent in [
        "ServiceDescription",
        "ProducerReferenceTime",
        "availabilityTimeOffset",
        "UTCTiming",
    ] {
        assert!(!xml.contains(absent), "{absent}: {xml}");
    }
    let periods: Vec<_> = children(mpd, "Period").collect();
    assert_eq!(periods.len(), 2);
    assert_eq!(
        (attr(periods[0], "start"), attr(periods[0], "duration")),
        ("PT0S", "PT12.022S")
    );
    assert_eq!(attr(periods[1], "start"), "PT12.022S");
    for (p, offset) in periods.iter().zip([0, 3]) {
        let v = child(*p, "AdaptationSet");
        let t = child(v, "SegmentTemplate");
        let want: Vec<_> = as_tuples(&l.v720)
            .into_iter()
            .map(|(n, t, d)| (n + offset, t, d))
            .collect();
        assert_eq!(expand(t), want);
        let a = children(*p, "AdaptationSet").nth(1).unwrap();
        let at = children(child(a, "Representation"), "SegmentTemplate")
            .next()
            .unwrap_or_else(|| child(a, "SegmentTemplate"));
        assert_eq!(expand(at).len(), l.audio.segments.len());
    }
}

#[test]
fn time_shift_window_drops_old_segments_and_periods() {
    let l = ladder();
    // Segment 0 ends at AST+4 s; it leaves the 10-minute window at AST+604 s.
    let m = manifest(&l, Duration::from_millis(604_001));
    let xml = m.render().unwrap();
    let doc = Document::parse(&xml).unwrap();
    let v = child(child(doc.root_element(), "Period"), "AdaptationSet");
    let t = child(v, "SegmentTemplate");
    assert_eq!(attr(t, "startNumber"), "1");
    assert_eq!(expand(t), as_tuples(&l.v720)[1..]);
    let a = children(child(doc.root_element(), "Period"), "AdaptationSet")
        .nth(1)
        .unwrap();
    // Audio segment 0 ends at 4.096 s: still listed.
    assert_eq!(attr(child(a, "SegmentTemplate"), "startNumber"), "0");

    // A republish: the first Period's segments all left the window, so only
    // the new Period (start 700 s, numbers continuing) is listed.
    let mut m = manifest(&l, Duration::from_secs(710));
    let mut second = period("p1", Duration::from_secs(700), &l);
    for set in &mut second.adaptation_sets {
        for r in &mut set.representations {
            for s in &mut r.segments {
                s.number += 3;
            }
        }
    }
    m.periods.push(second);
    let xml = m.render().unwrap();
    let doc = Document::parse(&xml).unwrap();
    let periods: Vec<_> = children(doc.root_element(), "Period").collect();
    assert_eq!(periods.len(), 1);
    assert_eq!(
        (attr(periods[0], "id"), attr(periods[0], "start")),
        ("p1", "PT11M40S")
    );
    let t = child(child(periods[0], "AdaptationSet"), "SegmentTemplate");
    assert_eq!(attr(t, "startNumber"), "3");
}

#[test]
fn republish_continues_as_a_new_period() {
    let l = ladder();
    let mut m = manifest(&l, Duration::from_secs(30));
    let mut second = period("p1", Duration::from_secs(20), &l);
    for set in &mut second.adaptation_sets {
        for r in &mut set.representations {
            for s in &mut r.segments {
                s.number += 3;
            }
        }
    }
    m.periods.push(second);
    m.ended = true;
    let xml = m.render().unwrap();
    let doc = Document::parse(&xml).unwrap();
    let mpd = doc.root_element();
    let periods: Vec<_> = children(mpd, "Period").collect();
    assert_eq!(periods.len(), 2);
    assert_eq!(attr(periods[1], "start"), "PT20S");
    let t = child(child(periods[1], "AdaptationSet"), "SegmentTemplate");
    assert_eq!(expand(t)[0], (3, 0, 61440));
    // The presentation ends with the second Period: 20 s + 12.022 s.
    assert_eq!(attr(mpd, "mediaPresentationDuration"), "PT32.022S");
}

#[test]
fn duration_addressing_lists_no_timeline_and_ends_with_numbers() {
    let l = ladder();
    let by_duration = |p: &mut Period, start_number| {
        p.addressing = Addressing::Duration {
            segment: Duration::from_secs(4),
            start_number,
        }
    };
    let mut m = manifest(&l, Duration::from_secs(30));
    by_duration(&mut m.periods[0], 0);
    m.periods[0].duration = Some(Duration::from_millis(12_022));
    // The 400 rendition is a segment behind: with no timeline, one template still fits.
    m.periods[0].adaptation_sets[0].representations[1]
        .segments
        .pop();
    let mut second = period("p1", Duration::from_secs(20), &l);
    by_duration(&mut second, 3);
    m.periods.push(second);
    let xml = m.render().unwrap();
    let doc = Document::parse(&xml).unwrap();
    let periods: Vec<_> = children(doc.root_element(), "Period").collect();
    assert_eq!(periods[0].attribute("duration"), Some("PT12.022S"));
    assert_eq!(
        periods[1].attribute("duration"),
        None,
        "the live Period is open"
    );
    for (p, start) in periods.iter().zip(["0", "3"]) {
        let sets: Vec<_> = children(*p, "AdaptationSet").collect();
        for (set, ticks) in sets.iter().zip(["61440", "192000"]) {
            let t = child(*set, "SegmentTemplate");
            assert_eq!(
                (attr(t, "duration"), attr(t, "startNumber")),
                (ticks, start)
            );
            assert_eq!(attr(t, "presentationTimeOffset"), "0");
            assert!(t.attribute("endNumber").is_none());
            assert_eq!(
                t.children().filter(Node::is_element).count(),
                0,
                "no timeline"
            );
        }
    }
    // Ended: each rendition's template says its last number.
    m.ended = true;
    let xml = m.render().unwrap();
    let doc = Document::parse(&xml).unwrap();
    let p0 = child(doc.root_element(), "Period");
    let reps: Vec<_> = children(child(p0, "AdaptationSet"), "Representation").collect();
    let ends: Vec<_> = reps
        .iter()
        .map(|r| attr(child(*r, "SegmentTemplate"), "endNumber"))
        .collect();
    assert_eq!(ends, ["2", "1"]);
    // A zero duration is refused.
    m.periods[1].addressing = Addressing::Duration {
        segment: Duration::ZERO,
        start_number: 3,
    };
    assert!(m.render().is_err());
}

#[test]
fn per_representation_templates_when_timelines_differ() {
    let l = ladder();
    let mut m = manifest(&l, Duration::from_secs(13));
    // The 400 rendition is missing its last segment (still being written).
    m.periods[0].adaptation_sets[0].representations[1]
        .segments
        .pop();
    let xml = m.render().unwrap();
    let doc = Document::parse(&xml).unwrap();
    let v = child(child(doc.root_element(), "Period"), "AdaptationSet");
    assert!(children(v, "SegmentTemplate").next().is_none());
    let reps: Vec<_> = children(v, "Representation").collect();
    assert_eq!(expand(child(reps[0], "SegmentTemplate")).len(), 3);
    assert_eq!(expand(child(reps[1], "SegmentTemplate")).len(), 2);
}

#[test]
fn low_latency_signalling() {
    let l = ladder();
    let mut m = manifest(&l, Duration::from_secs(13));
    m.low_latency = Some(LowLatency {
        availability_time_offset: Duration::from_millis(3500),
        target_latency: Duration::from_secs(3),
        min_latency: Some(Duration::from_secs(2)),
        max_latency: Some(Duration::from_secs(6)),
        playback_rate: Some((0.96, 1.04)),
    });
    m.utc_timing = vec![UtcTiming::Direct];
    let xml = m.render().unwrap();
    let doc = Document::parse(&xml).unwrap();
    let mpd = doc.root_element();
    let names: Vec<_> = mpd
        .children()
        .filter(|n| n.is_element())
        .map(|n| n.tag_name().name())
        .collect();
    assert_eq!(names, ["ServiceDescription", "Period", "UTCTiming"]);
    let sd = child(mpd, "ServiceDescription");
    let lat = child(sd, "Latency");
    assert_eq!(
        (attr(lat, "target"), attr(lat, "min"), attr(lat, "max")),
        ("3000", "2000", "6000")
    );
    let rate = child(sd, "PlaybackRate");
    assert_eq!((attr(rate, "min"), attr(rate, "max")), ("0.96", "1.04"));
    for t in mpd
        .descendants()
        .filter(|n| n.has_tag_name((NS, "SegmentTemplate")))
    {
        assert_eq!(attr(t, "availabilityTimeOffset"), "3.5");
        assert_eq!(attr(t, "availabilityTimeComplete"), "false");
    }
    let utc = child(mpd, "UTCTiming");
    assert_eq!(attr(utc, "schemeIdUri"), "urn:mpeg:dash:utc:direct:2014");
    assert_eq!(attr(utc, "value"), attr(mpd, "publishTime"));
}

#[test]
fn hostile_strings_are_escaped() {
    let l = ladder();
    let mut m = manifest(&l, Duration::from_secs(13));
    m.periods[0].id = "a\"b<c>&'d\u{0}".into();
    m.periods[0].adaptation_sets[0].representations[0].id = "x\" onload=\"y".into();
    let xml = m.render().unwrap();
    let doc = Document::parse(&xml).unwrap();
    let p = child(doc.root_element(), "Period");
    assert_eq!(attr(p, "id"), "a\"b<c>&'d\u{fffd}");
    let r = child(child(p, "AdaptationSet"), "Representation");
    assert_eq!(attr(r, "id"), "x\" onload=\"y");
    assert!(r.attribute("onload").is_none());
}
