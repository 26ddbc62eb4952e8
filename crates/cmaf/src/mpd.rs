//! A dynamic MPEG-DASH MPD (ISO/IEC 23009-1), rendered from a small model.
//!
//! The model is what a live packager knows: wall-clock anchors, one Period
//! per publish (a republish or a transcoder restart continues as a new
//! Period), a video AdaptationSet with the ladder's Representations, an audio
//! AdaptationSet, and the list of finished segments of each Representation.
//! [`Manifest::render`] turns it into XML:
//!
//! - `type="dynamic"`, `availabilityStartTime`, `publishTime`,
//!   `minimumUpdatePeriod`, `timeShiftBufferDepth`,
//!   `suggestedPresentationDelay`, `minBufferTime`, `maxSegmentDuration`;
//! - SegmentTemplate with `$Number$` addressing and, per Period, either a
//!   SegmentTimeline (`<S t d r>`: the exact segment times) or
//!   `SegmentTemplate@duration` (segment `startNumber + i` covers Period time
//!   `[i·d, (i+1)·d)`, see [`Addressing`]);
//! - only segments still inside the time-shift buffer are listed (those whose
//!   availability ended before `publishTime` are left out), so
//!   `timeShiftBufferDepth` always covers what is listed; Periods left without
//!   segments are dropped (the last one is kept);
//! - `UTCTiming` after the Periods, as the schema orders it (dash.js needs one
//!   that points at a reachable clock, see the field notes).
//!
//! # End of a live stream
//! When [`Manifest::ended`] is set the MPD follows DASH-IF IOP v4.3 4.4.3.1
//! (restated in the DASH-IF "live2vod" guidelines, "Transition between Live
//! and On-Demand"): `type` stays `dynamic`, `minimumUpdatePeriod` is removed
//! (players stop polling) and `MPD@mediaPresentationDuration` is added, equal
//! to the end of the last segment of the last Period. Players that are
//! watching play to the end and stop cleanly: dash.js marks a dynamic stream
//! finished when its last listed segment reaches the Period end and calls
//! `endOfStream`, instead of asking for segments that will never come (the
//! "endless 404s"). Switching to `type="static"` is *not* done: dash.js
//! (ManifestUpdater, "DYNAMIC_TO_STATIC") stops updating and ignores a
//! static MPD that replaces a dynamic one, and the guidelines allow the switch
//! only after clients have stopped polling.
//!
//! # Low latency
//! [`Manifest::low_latency`] adds `availabilityTimeOffset` and
//! `availabilityTimeComplete="false"` to every SegmentTemplate and a
//! `ServiceDescription` (target latency, playback rates), as the DASH-IF
//! low-latency guidelines ask; the segments stay the same.
//!
//! # A recording (static)
//! [`Manifest::recording`] makes a `type="static"` MPD of a finished presentation (VOD
//! replay): `mediaPresentationDuration`, every Period with its `@duration` and every segment
//! in a `SegmentTimeline` of its real durations (a recording's segments are not cut on the
//! clock's grid at its edges: the first one starts where the publish did). None of the live
//! signalling: no `availabilityStartTime`, `publishTime`, `minimumUpdatePeriod`,
//! `timeShiftBufferDepth`, `suggestedPresentationDelay`, low latency or
//! `ProducerReferenceTime` — a static presentation is on no wall clock, and players seek in
//! it from Period time 0.
//!
//! Every attribute value is XML-escaped.

use std::fmt::Write as _;
use std::time::Duration;

use time::{OffsetDateTime, PrimitiveDateTime};

use crate::boxes::{MediaParams, TrackInfo};
use crate::parts::Parts;
use crate::segmenter::SegmentEnd;
use crate::{ApiMisuse, CmafError};

/// The DASH profile used: ISO BMFF live (SegmentTemplate, fragmented MP4).
pub const PROFILE_ISOFF_LIVE: &str = "urn:mpeg:dash:profile:isoff-live:2011";

/// Scheme of `AudioChannelConfiguration` whose value is the channel count.
pub const AUDIO_CHANNEL_SCHEME: &str = "urn:mpeg:dash:23003:3:audio_channel_configuration:2011";

/// `MPD@type`: a live presentation or a recording of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PresentationType {
    /// `dynamic`: live, on the wall clock (the default).
    #[default]
    Dynamic,
    /// `static`: a finished recording (see the module documentation).
    Static,
}

/// A presentation: dynamic (live) or static (a recording).
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// `MPD@type`. A static presentation ignores the live-only fields (wall-clock anchors,
    /// update period, time-shift buffer, delay, low latency) and lists every segment.
    pub presentation_type: PresentationType,
    /// `MPD@availabilityStartTime`, milliseconds since the Unix epoch: the
    /// wall-clock time of MPD time 0. Must not change between updates.
    pub availability_start_time: u64,
    /// `MPD@publishTime`, milliseconds since the Unix epoch: when this version
    /// was made. Also the "now" of the time-shift window.
    pub publish_time: u64,
    /// `MPD@minimumUpdatePeriod` (left out once ended).
    pub min_update_period: Duration,
    /// `MPD@timeShiftBufferDepth`.
    pub time_shift_buffer_depth: Duration,
    /// `MPD@suggestedPresentationDelay`.
    pub suggested_presentation_delay: Duration,
    /// `MPD@minBufferTime`.
    pub min_buffer_time: Duration,
    /// `UTCTiming` elements, in order of preference.
    pub utc_timing: Vec<UtcTiming>,
    /// The Periods, in order of start.
    pub periods: Vec<Period>,
    /// The publisher has stopped: see the module documentation.
    pub ended: bool,
    /// Low-latency signalling, if wanted.
    pub low_latency: Option<LowLatency>,
}

/// A clock source for the player (`UTCTiming`, ISO/IEC 23009-1 5.8.4.11).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UtcTiming {
    /// `urn:mpeg:dash:utc:http-iso:2014`: the URL returns an ISO 8601 time.
    HttpIso(String),
    /// `urn:mpeg:dash:utc:http-xsdate:2014`: the URL returns an xs:dateTime.
    HttpXsDate(String),
    /// `urn:mpeg:dash:utc:http-head:2014`: the URL's `Date` header.
    HttpHead(String),
    /// `urn:mpeg:dash:utc:direct:2014`: the `publishTime` itself, no request.
    Direct,
}

/// Low-latency DASH signalling (DASH-IF low-latency guidelines).
#[derive(Debug, Clone, PartialEq)]
pub struct LowLatency {
    /// `SegmentTemplate@availabilityTimeOffset`: how long before its end a
    /// segment starts being available (segment duration − chunk duration).
    pub availability_time_offset: Duration,
    /// `ServiceDescription/Latency@target`.
    pub target_latency: Duration,
    /// `Latency@min`.
    pub min_latency: Option<Duration>,
    /// `Latency@max`.
    pub max_latency: Option<Duration>,
    /// `PlaybackRate@min` and `@max`, e.g. (0.96, 1.04).
    pub playback_rate: Option<(f64, f64)>,
}

/// How a Period's SegmentTemplates say which segments exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Addressing {
    /// A `SegmentTimeline` listing the segments (those of [`Representation::segments`] and
    /// [`Representation::in_progress`] still in the time-shift buffer).
    #[default]
    Timeline,
    /// `SegmentTemplate@duration`: segment `start_number + i` covers Period time
    /// `[i·segment, (i+1)·segment)` (its media time from `presentationTimeOffset`), and a
    /// player finds the live edge from the clock. Low-latency players need this: Shaka
    /// places the live edge of a timeline MPD at the end of its last `<S>`, which for a
    /// segment listed while it is made lies in the future (BENCHMARKS.md, "Why Shaka starts
    /// late and stalls"). The segments must start on those boundaries (keyframes forced on
    /// them) and have no gaps.
    Duration {
        /// The nominal segment duration.
        segment: Duration,
        /// `startNumber`: the number of the segment at Period time 0.
        start_number: u64,
    },
}

/// A Period: one continuous media timeline (one publish).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Period {
    /// `Period@id`, unique within the presentation.
    pub id: String,
    /// `Period@start`, from `availabilityStartTime`.
    pub start: Duration,
    /// `Period@duration`, for a Period that has ended: with [`Addressing::Duration`] it
    /// says how many segments there are (the next Period may start later, after a pause).
    pub duration: Option<Duration>,
    /// How its segments are addressed.
    pub addressing: Addressing,
    /// The Period's timeline is the media's capture time: each AdaptationSet gets a
    /// `ProducerReferenceTime` (id 0, `type="encoder"`) that ties the Period start's media
    /// time to its wall-clock time, and `Latency@referenceId` names it, so players measure
    /// latency from the capture (DASH-IF low-latency guidelines, ISO/IEC 23009-1 5.12).
    pub producer_reference: bool,
    /// Its AdaptationSets (video, audio).
    pub adaptation_sets: Vec<AdaptationSet>,
}

/// What an AdaptationSet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// `video/mp4`.
    Video,
    /// `audio/mp4`.
    Audio,
}

/// An AdaptationSet: switchable Representations of one content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdaptationSet {
    /// `AdaptationSet@id`.
    pub id: u32,
    /// `@contentType` and `@mimeType`.
    pub content_type: ContentType,
    /// `@lang`, if known.
    pub lang: Option<String>,
    /// `SegmentTemplate@initialization`.
    pub initialization: String,
    /// `SegmentTemplate@media`; must use `$Number$`.
    pub media: String,
    /// The Representations.
    pub representations: Vec<Representation>,
}

impl AdaptationSet {
    /// The default init template: `$RepresentationID$/init.mp4`.
    pub const DEFAULT_INITIALIZATION: &'static str = "$RepresentationID$/init.mp4";
    /// The default media template: `$RepresentationID$/$Number$.m4s`.
    pub const DEFAULT_MEDIA: &'static str = "$RepresentationID$/$Number$.m4s";

    /// An empty AdaptationSet with the default templates.
    pub fn new(id: u32, content_type: ContentType) -> Self {
        Self {
            id,
            content_type,
            lang: None,
            initialization: Self::DEFAULT_INITIALIZATION.to_owned(),
            media: Self::DEFAULT_MEDIA.to_owned(),
            representations: Vec::new(),
        }
    }
}

/// A Representation and its segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Representation {
    /// `@id`, also `$RepresentationID$` in the templates.
    pub id: String,
    /// `@bandwidth` in bits per second.
    pub bandwidth: u32,
    /// `@codecs` (RFC 6381).
    pub codecs: String,
    /// `SegmentTemplate@timescale`: the track's `mdhd` timescale.
    pub timescale: u32,
    /// `SegmentTemplate@presentationTimeOffset`: the media time presented at
    /// the Period start (usually the first segment's start, 0 for ffmpeg).
    pub presentation_time_offset: u64,
    /// Size and frame rate, or sampling rate and channels.
    pub format: Format,
    /// Finished segments, in order. Only a run of consecutive numbers can be
    /// expressed with `$Number$`: after a gap, only the segments after the
    /// last gap are listed.
    pub segments: Vec<SegmentRef>,
    /// The segment being made, with the duration it will have: the MPD lists it after the
    /// finished ones (low-latency players fetch it as its chunks are made); HLS playlists,
    /// which list finished segments only, leave it out.
    pub in_progress: Option<SegmentRef>,
    /// The chunks of the most recent segments, for low-latency HLS (`EXT-X-PART`); empty
    /// when the packager does not track them (the MPD does not use them).
    pub parts: Parts,
}

impl Representation {
    /// A Representation described by a track's init segment, without segments.
    pub fn from_track(id: impl Into<String>, track: &TrackInfo, bandwidth: u32) -> Self {
        let format = match track.params {
            MediaParams::Video { width, height } => Format::Video {
                width: width.into(),
                height: height.into(),
                frame_rate: None,
                sar: (1, 1),
            },
            MediaParams::Audio {
                sample_rate,
                channels,
            } => Format::Audio {
                sampling_rate: sample_rate,
                channels,
            },
        };
        Self {
            id: id.into(),
            bandwidth,
            codecs: track.codec.clone(),
            timescale: track.timescale,
            presentation_time_offset: 0,
            format,
            segments: Vec::new(),
            in_progress: None,
            parts: Parts::default(),
        }
    }
}

/// Media format attributes of a Representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `@width`, `@height`, `@frameRate`, `@sar`.
    Video {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Frames per second, if known.
        frame_rate: Option<FrameRate>,
        /// Sample aspect ratio, e.g. (1, 1).
        sar: (u32, u32),
    },
    /// `@audioSamplingRate` and `AudioChannelConfiguration`.
    Audio {
        /// Hz.
        sampling_rate: u32,
        /// Channel count.
        channels: u16,
    },
}

/// A frame rate as a fraction, e.g. 30/1 or 30000/1001.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRate {
    /// Numerator.
    pub num: u32,
    /// Denominator (1 is written as a bare integer).
    pub den: u32,
}

impl FrameRate {
    /// The rate to write for a measured `fps`: NTSC rates are x/1.001, everything else is
    /// close enough to an integer.
    pub fn from_fps(fps: f64) -> Self {
        let rounded = fps.round();
        if (fps - rounded).abs() < 0.01 {
            FrameRate {
                num: rounded as u32,
                den: 1,
            }
        } else {
            FrameRate {
                num: (fps * 1001.0).round() as u32,
                den: 1001,
            }
        }
    }

    fn as_f64(self) -> f64 {
        f64::from(self.num) / f64::from(self.den.max(1))
    }

    fn render(self) -> String {
        if self.den <= 1 {
            self.num.to_string()
        } else {
            format!("{}/{}", self.num, self.den)
        }
    }
}

/// One segment in a SegmentTimeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentRef {
    /// `$Number$`.
    pub number: u64,
    /// Start (`S@t`) in the Representation's timescale.
    pub start: u64,
    /// Duration (`S@d`) in the Representation's timescale.
    pub duration: u64,
}

impl From<SegmentEnd> for SegmentRef {
    fn from(s: SegmentEnd) -> Self {
        Self {
            number: s.segment,
            start: s.start,
            duration: s.duration,
        }
    }
}

impl Manifest {
    /// A live manifest with this service's defaults: updates every 2 s, a
    /// 10-minute time-shift buffer, 8 s presentation delay, 4 s minimum buffer,
    /// no UTCTiming (add one!), no Periods.
    pub fn new(availability_start_time: u64, publish_time: u64) -> Self {
        Self {
            presentation_type: PresentationType::Dynamic,
            availability_start_time,
            publish_time,
            min_update_period: Duration::from_secs(2),
            time_shift_buffer_depth: Duration::from_secs(600),
            suggested_presentation_delay: Duration::from_secs(8),
            min_buffer_time: Duration::from_secs(4),
            utc_timing: Vec::new(),
            periods: Vec::new(),
            ended: false,
            low_latency: None,
        }
    }

    /// A static presentation (a recording): Periods are added by the caller, each with its
    /// start on the recording's own timeline (the first at 0) and `Addressing::Timeline`.
    pub fn recording() -> Self {
        Self {
            presentation_type: PresentationType::Static,
            ended: true,
            ..Self::new(0, 0)
        }
    }

    /// `type="static"`.
    pub fn is_static(&self) -> bool {
        self.presentation_type == PresentationType::Static
    }

    /// Renders the MPD as XML.
    ///
    /// Fails with [`ApiMisuse::InvalidManifest`] if the model cannot be
    /// rendered: no Period, Periods out of order, a zero timescale, a media
    /// template without `$Number$`, or non-finite playback rates.
    pub fn render(&self) -> Result<String, CmafError> {
        self.validate()?;
        let periods = self.visible_periods();

        let mut xml = Xml::default();
        xml.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let is_static = self.is_static();
        let mut attrs = vec![
            ("xmlns", "urn:mpeg:dash:schema:mpd:2011".to_owned()),
            ("profiles", PROFILE_ISOFF_LIVE.to_owned()),
        ];
        if is_static {
            attrs.push(("type", "static".to_owned()));
        } else {
            attrs.push(("type", "dynamic".to_owned()));
            attrs.push((
                "availabilityStartTime",
                xs_datetime(self.availability_start_time),
            ));
            attrs.push(("publishTime", xs_datetime(self.publish_time)));
        }
        if self.ended || is_static {
            let end = periods
                .last()
                .map(|(p, sets)| p.start.saturating_add(period_media_end(sets)))
                .unwrap_or_default();
            attrs.push(("mediaPresentationDuration", xs_duration(end)));
        } else {
            attrs.push(("minimumUpdatePeriod", xs_duration(self.min_update_period)));
        }
        if !is_static {
            attrs.push((
                "timeShiftBufferDepth",
                xs_duration(self.time_shift_buffer_depth),
            ));
            attrs.push((
                "suggestedPresentationDelay",
                xs_duration(self.suggested_presentation_delay),
            ));
        }
        attrs.push(("minBufferTime", xs_duration(self.min_buffer_time)));
        let max_segment = periods
            .iter()
            .flat_map(|(_, sets)| sets.iter())
            .flat_map(|(_, reps)| reps.iter())
            .flat_map(|(rep, segs)| {
                segs.iter()
                    .map(|s| ticks_to_duration(s.duration, rep.timescale))
            })
            .max();
        if let Some(max) = max_segment {
            attrs.push(("maxSegmentDuration", xs_duration(ceil_millis(max))));
        }
        xml.open("MPD", &attrs);

        if let Some(ll) = self.low_latency.as_ref().filter(|_| !is_static) {
            xml.open("ServiceDescription", &[("id", "0".to_owned())]);
            let mut latency = vec![];
            if periods.iter().any(|(p, _)| p.producer_reference) {
                latency.push(("referenceId", "0".to_owned()));
            }
            latency.push(("target", millis(ll.target_latency)));
            if let Some(min) = ll.min_latency {
                latency.push(("min", millis(min)));
            }
            if let Some(max) = ll.max_latency {
                latency.push(("max", millis(max)));
            }
            xml.empty("Latency", &latency);
            if let Some((min, max)) = ll.playback_rate {
                xml.empty(
                    "PlaybackRate",
                    &[("min", format!("{min}")), ("max", format!("{max}"))],
                );
            }
            xml.close("ServiceDescription");
        }

        for (period, sets) in &periods {
            let mut attrs = vec![
                ("id", period.id.clone()),
                ("start", xs_duration(period.start)),
            ];
            if let Some(d) = period.duration {
                attrs.push(("duration", xs_duration(d)));
            }
            xml.open("Period", &attrs);
            for (set, reps) in sets {
                self.render_adaptation_set(&mut xml, period, set, reps);
            }
            xml.close("Period");
        }

        for timing in &self.utc_timing {
            xml.empty("UTCTiming", &self.utc_timing_attrs(timing));
        }
        xml.close("MPD");
        Ok(xml.out)
    }

    fn utc_timing_attrs(&self, timing: &UtcTiming) -> Vec<(&'static str, String)> {
        let (scheme, value) = match timing {
            UtcTiming::HttpIso(url) => ("urn:mpeg:dash:utc:http-iso:2014", url.clone()),
            UtcTiming::HttpXsDate(url) => ("urn:mpeg:dash:utc:http-xsdate:2014", url.clone()),
            UtcTiming::HttpHead(url) => ("urn:mpeg:dash:utc:http-head:2014", url.clone()),
            UtcTiming::Direct => (
                "urn:mpeg:dash:utc:direct:2014",
                xs_datetime(self.publish_time),
            ),
        };
        vec![("schemeIdUri", scheme.to_owned()), ("value", value)]
    }

    fn validate(&self) -> Result<(), CmafError> {
        if self.periods.is_empty() {
            return Err(ApiMisuse::InvalidManifest("no Period").into());
        }
        if self.periods.windows(2).any(|w| w[1].start < w[0].start) {
            return Err(ApiMisuse::InvalidManifest("Periods out of order").into());
        }
        for period in &self.periods {
            if let Addressing::Duration { segment, .. } = period.addressing {
                if segment.is_zero() {
                    return Err(ApiMisuse::InvalidManifest("zero segment duration").into());
                }
            }
            for set in &period.adaptation_sets {
                if !set.media.contains("$Number$") {
                    return Err(ApiMisuse::InvalidManifest(
                        "SegmentTemplate@media without $Number$",
                    )
                    .into());
                }
                if set.representations.iter().any(|r| r.timescale == 0) {
                    return Err(ApiMisuse::InvalidManifest("zero timescale").into());
                }
            }
        }
        if let Some((min, max)) = self.low_latency.as_ref().and_then(|ll| ll.playback_rate) {
            if !min.is_finite() || !max.is_finite() {
                return Err(ApiMisuse::InvalidManifest("non-finite playback rate").into());
            }
        }
        Ok(())
    }

    /// Whether segment `s` of `rep` in `period` is still inside the time-shift buffer (its
    /// availability has not ended before `publish_time`).
    pub(crate) fn in_time_shift_buffer(
        &self,
        period: &Period,
        rep: &Representation,
        s: &SegmentRef,
    ) -> bool {
        if self.is_static() {
            // A recording has no time-shift buffer: everything it lists is there.
            return true;
        }
        let now_ns = i128::from(self.publish_time) * 1_000_000;
        let ast_ns = i128::from(self.availability_start_time) * 1_000_000;
        let period_ns = ast_ns + period.start.as_nanos() as i128;
        let depth_ns = self.time_shift_buffer_depth.as_nanos() as i128;
        let end = rel_ns(s.start.saturating_add(s.duration), rep);
        period_ns + end + depth_ns >= now_ns
    }

    /// Periods, AdaptationSets and Representations that still have segments
    /// in the time-shift window, each with its listable segments. The last
    /// Period is always kept.
    fn visible_periods(&self) -> Vec<VisiblePeriod<'_>> {
        let last = self.periods.len().saturating_sub(1);
        let mut out = Vec::new();
        for (index, period) in self.periods.iter().enumerate() {
            let mut sets = Vec::new();
            for set in &period.adaptation_sets {
                let mut reps = Vec::new();
                for rep in &set.representations {
                    // A recording has no segment in progress.
                    let in_progress = rep.in_progress.as_ref().filter(|_| !self.is_static());
                    let all = rep.segments.iter().chain(in_progress);
                    let segments = listable(
                        all.copied()
                            .filter(|s| self.in_time_shift_buffer(period, rep, s)),
                    );
                    if !segments.is_empty() {
                        reps.push((rep, segments));
                    }
                }
                if !reps.is_empty() {
                    sets.push((set, reps));
                }
            }
            if !sets.is_empty() || index == last {
                out.push((period, sets));
            }
        }
        out
    }

    fn render_adaptation_set(
        &self,
        xml: &mut Xml,
        period: &Period,
        set: &AdaptationSet,
        reps: &[VisibleRep<'_>],
    ) {
        let mut attrs = vec![("id", set.id.to_string())];
        match set.content_type {
            ContentType::Video => {
                attrs.push(("contentType", "video".to_owned()));
                attrs.push(("mimeType", "video/mp4".to_owned()));
            }
            ContentType::Audio => {
                attrs.push(("contentType", "audio".to_owned()));
                attrs.push(("mimeType", "audio/mp4".to_owned()));
            }
        }
        if let Some(lang) = &set.lang {
            attrs.push(("lang", lang.clone()));
        }
        attrs.push(("segmentAlignment", "true".to_owned()));
        attrs.push(("startWithSAP", "1".to_owned()));
        let videos = reps.iter().filter_map(|(r, _)| match r.format {
            Format::Video {
                width,
                height,
                frame_rate,
                ..
            } => Some((width, height, frame_rate)),
            Format::Audio { .. } => None,
        });
        let (mut max_w, mut max_h, mut max_fps) = (0u32, 0u32, None::<FrameRate>);
        for (w, h, fps) in videos {
            if u64::from(w) * u64::from(h) >= u64::from(max_w) * u64::from(max_h) {
                (max_w, max_h) = (w, h);
            }
            if let Some(fps) = fps {
                match max_fps {
                    Some(m) if m.as_f64() >= fps.as_f64() => {}
                    _ => max_fps = Some(fps),
                }
            }
        }
        if max_w > 0 && max_h > 0 {
            let g = gcd(max_w, max_h);
            attrs.push(("par", format!("{}:{}", max_w / g, max_h / g)));
            attrs.push(("maxWidth", max_w.to_string()));
            attrs.push(("maxHeight", max_h.to_string()));
        }
        if let Some(fps) = max_fps {
            attrs.push(("maxFrameRate", fps.render()));
        }
        xml.open("AdaptationSet", &attrs);
        if period.producer_reference && !self.is_static() {
            // The Period start's media time was captured at the Period start's wall-clock
            // time (the timeline is anchored on the capture clock).
            let rep = reps[0].0;
            xml.open(
                "ProducerReferenceTime",
                &[
                    ("id", "0".to_owned()),
                    ("type", "encoder".to_owned()),
                    (
                        "wallClockTime",
                        xs_datetime(self.availability_start_time + period.start.as_millis() as u64),
                    ),
                    ("presentationTime", rep.presentation_time_offset.to_string()),
                ],
            );
            if let Some(timing) = self.utc_timing.first() {
                xml.empty("UTCTiming", &self.utc_timing_attrs(timing));
            }
            xml.close("ProducerReferenceTime");
        }
        xml.empty(
            "Role",
            &[
                ("schemeIdUri", "urn:mpeg:dash:role:2011".to_owned()),
                ("value", "main".to_owned()),
            ],
        );

        // One SegmentTemplate for the whole set when every Representation has
        // the same timeline (the usual case with aligned keyframes).
        let (first, first_segments) = &reps[0];
        // By duration, the segments are not listed, so one template fits every rendition
        // whose finished segments differ (a moment apart) — until the end says where the
        // numbers stop.
        let by_duration = matches!(period.addressing, Addressing::Duration { .. }) && !self.ended;
        let shared = reps.iter().all(|(r, s)| {
            r.timescale == first.timescale
                && r.presentation_time_offset == first.presentation_time_offset
                && (by_duration || s == first_segments)
        });
        if shared {
            self.render_template(xml, period, set, first, first_segments);
        }
        for (rep, segments) in reps {
            let mut attrs = vec![
                ("id", rep.id.clone()),
                ("bandwidth", rep.bandwidth.to_string()),
                ("codecs", rep.codecs.clone()),
            ];
            match rep.format {
                Format::Video {
                    width,
                    height,
                    frame_rate,
                    sar,
                } => {
                    attrs.push(("width", width.to_string()));
                    attrs.push(("height", height.to_string()));
                    if let Some(fps) = frame_rate {
                        attrs.push(("frameRate", fps.render()));
                    }
                    attrs.push(("sar", format!("{}:{}", sar.0, sar.1)));
                }
                Format::Audio { sampling_rate, .. } => {
                    attrs.push(("audioSamplingRate", sampling_rate.to_string()));
                }
            }
            let channels = match rep.format {
                Format::Audio { channels, .. } => Some(channels),
                Format::Video { .. } => None,
            };
            if shared && channels.is_none() {
                xml.empty("Representation", &attrs);
                continue;
            }
            xml.open("Representation", &attrs);
            if let Some(channels) = channels {
                xml.empty(
                    "AudioChannelConfiguration",
                    &[
                        ("schemeIdUri", AUDIO_CHANNEL_SCHEME.to_owned()),
                        ("value", channels.to_string()),
                    ],
                );
            }
            if !shared {
                self.render_template(xml, period, set, rep, segments);
            }
            xml.close("Representation");
        }
        xml.close("AdaptationSet");
    }

    fn render_template(
        &self,
        xml: &mut Xml,
        period: &Period,
        set: &AdaptationSet,
        rep: &Representation,
        segments: &[SegmentRef],
    ) {
        let mut attrs = vec![
            ("timescale", rep.timescale.to_string()),
            (
                "presentationTimeOffset",
                rep.presentation_time_offset.to_string(),
            ),
        ];
        if let Some(ll) = self.low_latency.as_ref().filter(|_| !self.is_static()) {
            attrs.push((
                "availabilityTimeOffset",
                decimal_seconds(ll.availability_time_offset),
            ));
            attrs.push(("availabilityTimeComplete", "false".to_owned()));
        }
        match period.addressing {
            Addressing::Timeline => {
                if let Some(first) = segments.first() {
                    attrs.push(("startNumber", first.number.to_string()));
                }
            }
            Addressing::Duration {
                segment,
                start_number,
            } => {
                let ticks = segment.as_nanos() * u128::from(rep.timescale) / 1_000_000_000;
                attrs.push(("duration", ticks.to_string()));
                attrs.push(("startNumber", start_number.to_string()));
            }
        }
        // An ended presentation also says where the numbers stop: dash.js 5 only finishes a
        // dynamic stream on its own when it knows the last segment (with
        // mediaPresentationDuration alone it waits at the end forever).
        if let (true, Some(last)) = (self.ended, segments.last()) {
            attrs.push(("endNumber", last.number.to_string()));
        }
        attrs.push(("initialization", set.initialization.clone()));
        attrs.push(("media", set.media.clone()));
        if let Addressing::Duration { .. } = period.addressing {
            xml.empty("SegmentTemplate", &attrs);
            return;
        }
        xml.open("SegmentTemplate", &attrs);
        xml.open("SegmentTimeline", &[]);
        for run in timeline_runs(segments) {
            let mut s = Vec::with_capacity(3);
            if let Some(t) = run.t {
                s.push(("t", t.to_string()));
            }
            s.push(("d", run.d.to_string()));
            if run.r > 0 {
                s.push(("r", run.r.to_string()));
            }
            xml.empty("S", &s);
        }
        xml.close("SegmentTimeline");
        xml.close("SegmentTemplate");
    }
}

type VisibleRep<'a> = (&'a Representation, Vec<SegmentRef>);
type VisibleSet<'a> = (&'a AdaptationSet, Vec<VisibleRep<'a>>);
type VisiblePeriod<'a> = (&'a Period, Vec<VisibleSet<'a>>);

/// Media time relative to the Period start, in nanoseconds.
fn rel_ns(media_time: u64, rep: &Representation) -> i128 {
    (i128::from(media_time) - i128::from(rep.presentation_time_offset)) * 1_000_000_000
        / i128::from(rep.timescale.max(1))
}

fn ticks_to_duration(ticks: u64, timescale: u32) -> Duration {
    let ns = u128::from(ticks) * 1_000_000_000 / u128::from(timescale.max(1));
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

/// End of the last segment of a Period, relative to its start (0 if none).
fn period_media_end(sets: &[VisibleSet<'_>]) -> Duration {
    let end_ns = sets
        .iter()
        .flat_map(|(_, reps)| reps.iter())
        .filter_map(|(rep, segs)| {
            segs.last()
                .map(|s| rel_ns(s.start.saturating_add(s.duration), rep))
        })
        .max()
        .unwrap_or(0)
        .max(0);
    ceil_millis(Duration::from_nanos(
        u64::try_from(end_ns).unwrap_or(u64::MAX),
    ))
}

/// The segments that `$Number$` + SegmentTimeline can express: the longest
/// run at the end with consecutive numbers and non-decreasing times.
fn listable(segments: impl Iterator<Item = SegmentRef>) -> Vec<SegmentRef> {
    let mut out: Vec<SegmentRef> = Vec::new();
    for s in segments {
        let continues = out.last().is_some_and(|p| {
            p.number.checked_add(1) == Some(s.number)
                && s.start >= p.start.saturating_add(p.duration)
        });
        if !continues {
            out.clear();
        }
        out.push(s);
    }
    out
}

struct Run {
    t: Option<u64>,
    d: u64,
    r: u64,
    /// Where the run ends (start of the next segment if contiguous).
    end: u64,
}

/// Run-length encodes a timeline; `t` is given on the first `S` and after a gap.
fn timeline_runs(segments: &[SegmentRef]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for s in segments {
        if let Some(run) = runs.last_mut() {
            if run.end == s.start && run.d == s.duration {
                run.r += 1;
                run.end = s.start.saturating_add(s.duration);
                continue;
            }
        }
        let contiguous = runs.last().is_some_and(|r| r.end == s.start);
        runs.push(Run {
            t: (!contiguous).then_some(s.start),
            d: s.duration,
            r: 0,
            end: s.start.saturating_add(s.duration),
        });
    }
    runs
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

fn ceil_millis(d: Duration) -> Duration {
    let ms = d.as_nanos().div_ceil(1_000_000);
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}

/// Seconds as a decimal number without trailing zeros, e.g. `3.5`.
fn decimal_seconds(d: Duration) -> String {
    let frac = d.subsec_nanos();
    if frac == 0 {
        return d.as_secs().to_string();
    }
    let digits = format!("{frac:09}");
    format!("{}.{}", d.as_secs(), digits.trim_end_matches('0'))
}

/// An xs:duration such as `PT10M`, `PT4S` or `PT1H2M3.5S`.
pub fn xs_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::from("PT");
    if h > 0 {
        let _ = write!(out, "{h}H");
    }
    if m > 0 {
        let _ = write!(out, "{m}M");
    }
    if s > 0 || d.subsec_nanos() > 0 || (h == 0 && m == 0) {
        out.push_str(&decimal_seconds(Duration::new(s, d.subsec_nanos())));
        out.push('S');
    }
    out
}

/// An xs:dateTime in UTC, e.g. `2024-05-01T12:00:00.250Z`, from milliseconds
/// since the Unix epoch (the fraction only when there is one).
pub fn xs_datetime(unix_ms: u64) -> String {
    // The calendar is the `time` crate's; it ends with the year 9999, where xs:dateTime's
    // four-digit years do too, and later times are written as its last millisecond.
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .unwrap_or(PrimitiveDateTime::MAX.assume_utc());
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let ms = t.millisecond();
    if ms > 0 {
        let _ = write!(out, ".{ms:03}");
    }
    out.push('Z');
    out
}

/// Escapes an attribute value; characters XML 1.0 forbids become U+FFFD.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
}

/// A tiny indenting XML writer.
#[derive(Default)]
struct Xml {
    out: String,
    depth: usize,
}

impl Xml {
    fn raw(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn start(&mut self, name: &str, attrs: &[(&str, String)]) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
        self.out.push('<');
        self.out.push_str(name);
        for (key, value) in attrs {
            self.out.push(' ');
            self.out.push_str(key);
            self.out.push_str("=\"");
            escape_into(&mut self.out, value);
            self.out.push('"');
        }
    }

    fn open(&mut self, name: &str, attrs: &[(&str, String)]) {
        self.start(name, attrs);
        self.out.push_str(">\n");
        self.depth += 1;
    }

    fn empty(&mut self, name: &str, attrs: &[(&str, String)]) {
        self.start(name, attrs);
        self.out.push_str("/>\n");
    }

    fn close(&mut self, name: &str) {
        self.depth = self.depth.saturating_sub(1);
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(number: u64, start: u64, duration: u64) -> SegmentRef {
        SegmentRef {
            number,
            start,
            duration,
        }
    }

    #[test]
    fn durations() {
        assert_eq!(xs_duration(Duration::ZERO), "PT0S");
        assert_eq!(xs_duration(Duration::from_secs(4)), "PT4S");
        assert_eq!(xs_duration(Duration::from_secs(600)), "PT10M");
        assert_eq!(xs_duration(Duration::from_millis(3_723_500)), "PT1H2M3.5S");
        assert_eq!(xs_duration(Duration::from_millis(4096)), "PT4.096S");
        assert_eq!(xs_duration(Duration::from_secs(7200)), "PT2H");
        assert_eq!(decimal_seconds(Duration::from_millis(3500)), "3.5");
    }

    #[test]
    fn datetimes() {
        assert_eq!(xs_datetime(0), "1970-01-01T00:00:00Z");
        assert_eq!(xs_datetime(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(xs_datetime(1_700_000_000_250), "2023-11-14T22:13:20.250Z");
        assert_eq!(xs_datetime(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
        // No panic at the extreme.
        assert!(xs_datetime(u64::MAX).ends_with('Z'));
    }

    #[test]
    fn escaping() {
        let mut s = String::new();
        escape_into(&mut s, "a&b<c>\"d'\n\u{1}é");
        assert_eq!(s, "a&amp;b&lt;c&gt;&quot;d&apos;&#10;\u{fffd}é");
    }

    #[test]
    fn runs() {
        let segs = [
            seg(5, 0, 4),
            seg(6, 4, 4),
            seg(7, 8, 4),
            seg(8, 12, 3),
            seg(9, 20, 4),
            seg(10, 24, 4),
        ];
        let r = timeline_runs(&segs);
        let got: Vec<_> = r.iter().map(|r| (r.t, r.d, r.r)).collect();
        assert_eq!(got, [(Some(0), 4, 2), (None, 3, 0), (Some(20), 4, 1)]);
    }

    #[test]
    fn listable_keeps_the_run_after_the_last_number_gap() {
        let segs = [seg(1, 0, 4), seg(2, 4, 8), seg(4, 12, 4), seg(5, 16, 4)];
        assert_eq!(listable(segs.into_iter()), [seg(4, 12, 4), seg(5, 16, 4)]);
        // Overlapping times also break the run.
        let segs = [seg(1, 0, 4), seg(2, 2, 4)];
        assert_eq!(listable(segs.into_iter()), [seg(2, 2, 4)]);
    }

    #[test]
    fn validation() {
        let mut m = Manifest::new(0, 0);
        assert_eq!(
            m.render(),
            Err(CmafError::ApiMisuse(ApiMisuse::InvalidManifest(
                "no Period"
            )))
        );
        m.periods.push(Period {
            id: "b".into(),
            start: Duration::from_secs(10),
            adaptation_sets: vec![],
            ..Default::default()
        });
        m.periods.push(Period {
            id: "a".into(),
            start: Duration::from_secs(5),
            adaptation_sets: vec![],
            ..Default::default()
        });
        assert_eq!(
            m.render(),
            Err(CmafError::ApiMisuse(ApiMisuse::InvalidManifest(
                "Periods out of order"
            )))
        );
        m.periods.pop();
        let mut set = AdaptationSet::new(0, ContentType::Video);
        set.media = "$RepresentationID$/$Time$.m4s".into();
        m.periods[0].adaptation_sets.push(set);
        assert!(m.render().is_err());
        m.periods[0].adaptation_sets[0].media = AdaptationSet::DEFAULT_MEDIA.into();
        assert!(m.render().is_ok());
    }
}
