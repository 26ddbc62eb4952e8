//! The part of a DASH MPD (ISO/IEC 23009-1) a live player needs, parsed from untrusted XML.
//!
//! What is read: `MPD@type`, `@availabilityStartTime`, `@publishTime`, `@minimumUpdatePeriod`,
//! `@suggestedPresentationDelay`, `@timeShiftBufferDepth`, `@mediaPresentationDuration`,
//! `UTCTiming`; each `Period` (`@id`, `@start`); its `AdaptationSet`s (content type from
//! `@contentType`, else `@mimeType`, of the set or its first Representation) and their
//! `Representation`s (`@id`, `@bandwidth`, `@width`, `@height`); `BaseURL` at every level,
//! each resolved against the one above it, starting from the MPD's own URL (RFC 3986, by
//! `url::Url::join`); and `SegmentTemplate`, inherited Period → AdaptationSet →
//! Representation (attributes of the nearer one win, the nearest timeline is used), with
//! `$RepresentationID$`, `$Number$`, `$Bandwidth$`, `$Time$` (and `%0Nd` widths) substituted.
//! A template addresses its segments with a `SegmentTimeline` or with `@duration`: then the
//! segments are those a player would compute at the MPD's `publishTime` (the server's clock
//! when it made this version) — from `startNumber`, within the time-shift buffer, each listed
//! once it is available (`availabilityTimeOffset` before its end), up to `endNumber` or the
//! end of the Period (`Period@duration`, else the next Period's start). Either way the player
//! sees a list of segments.
//!
//! The XML is read by `roxmltree`, dates by `time`. (The `dash-mpd` crate was tried instead: its
//! releases now carry a downloader, and its parser crate `dash-mpd-core` 0.1 reads malformed
//! xs:durations such as `PT-1S` as 0 s and panics on an out-of-range one in debug builds, which
//! an MPD from the network must not do.)
//!
//! Anything else is ignored. What cannot be used (neither a timeline nor a duration, a zero
//! timescale, a timeline that expands to more than [`MAX_SEGMENTS`] segments, a live
//! `@duration` template without `publishTime`, a date that is not a date) is an
//! [`MpdError`], never a panic: the MPD comes from the network.

use std::time::Duration;

use roxmltree::{Document, Node};
use url::Url;

/// Most segments one Representation's timeline may expand to.
pub const MAX_SEGMENTS: usize = 100_000;
/// Largest MPD accepted (bytes).
pub const MAX_MPD_BYTES: usize = 4 << 20;

/// Why the server's MPD cannot be used: not XML, not an MPD, or without what a live player
/// needs (the server's fault, not the player's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MPD: {0}")]
pub struct MpdError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, MpdError> {
    Err(MpdError(msg.into()))
}

/// A parsed MPD.
#[derive(Debug, Clone, PartialEq)]
pub struct Mpd {
    /// `type="dynamic"` (live).
    pub dynamic: bool,
    /// `@availabilityStartTime`, ms since the Unix epoch.
    pub availability_start_ms: Option<i64>,
    /// `@publishTime`, ms since the Unix epoch.
    pub publish_time_ms: Option<i64>,
    /// `@minimumUpdatePeriod` (absent once a live stream has ended).
    pub minimum_update_period: Option<Duration>,
    /// `@suggestedPresentationDelay`.
    pub suggested_presentation_delay: Option<Duration>,
    /// `@timeShiftBufferDepth`.
    pub time_shift_buffer_depth: Option<Duration>,
    /// `@mediaPresentationDuration` (set when a live stream ended).
    pub media_presentation_duration: Option<Duration>,
    /// `UTCTiming` elements: (schemeIdUri, value).
    pub utc_timing: Vec<(String, String)>,
    /// The Periods in document order.
    pub periods: Vec<Period>,
}

/// A Period.
#[derive(Debug, Clone, PartialEq)]
pub struct Period {
    /// `@id` (empty if absent).
    pub id: String,
    /// `@start` in seconds from `availabilityStartTime` (0 if absent).
    pub start_s: f64,
    /// `@duration` in seconds, if given.
    pub duration_s: Option<f64>,
    /// AdaptationSets with at least one usable Representation.
    pub adaptation_sets: Vec<AdaptationSet>,
}

/// What an AdaptationSet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// Video.
    Video,
    /// Audio.
    Audio,
    /// Anything else (text, images).
    Other,
}

/// An AdaptationSet.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptationSet {
    /// Video, audio or other.
    pub content: Content,
    /// Its Representations, by ascending bandwidth.
    pub representations: Vec<Representation>,
}

/// A Representation with its resolved segment template.
#[derive(Debug, Clone, PartialEq)]
pub struct Representation {
    /// `@id`.
    pub id: String,
    /// `@bandwidth` in bit/s.
    pub bandwidth: u64,
    /// `@width`, `@height` if given.
    pub size: Option<(u32, u32)>,
    /// The MPD's URL with every level's `BaseURL` (MPD → Representation) resolved against it
    /// in turn.
    pub base_url: Url,
    /// The inherited SegmentTemplate.
    pub template: Template,
}

/// A SegmentTemplate with its timeline expanded.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// `@timescale` (ticks per second), at least 1.
    pub timescale: u64,
    /// `@presentationTimeOffset` in ticks.
    pub presentation_time_offset: u64,
    /// `@startNumber` (1 if absent).
    pub start_number: u64,
    /// `@media`.
    pub media: String,
    /// `@initialization`.
    pub initialization: Option<String>,
    /// `@availabilityTimeOffset` in seconds (0 if absent; may be infinite per the spec, then
    /// capped here at one day).
    pub availability_time_offset_s: f64,
    /// `@availabilityTimeComplete` (true if absent).
    pub availability_time_complete: bool,
    /// `@duration` in ticks, when the template addresses segments by duration instead of a
    /// timeline.
    pub duration: Option<u64>,
    /// `@endNumber`, the last segment's number, if given.
    pub end_number: Option<u64>,
    /// The listed segments, in order.
    pub segments: Vec<Segment>,
}

/// One listed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// `$Number$`.
    pub number: u64,
    /// `S@t` in ticks.
    pub start: u64,
    /// `S@d` in ticks.
    pub duration: u64,
}

impl Mpd {
    /// Parses MPD text fetched from `url` (the base of the URLs in it).
    pub fn parse(text: &str, url: &Url) -> Result<Mpd, MpdError> {
        if text.len() > MAX_MPD_BYTES {
            return err(format!("{} bytes, more than {MAX_MPD_BYTES}", text.len()));
        }
        let doc = Document::parse(text).map_err(|e| MpdError(format!("not XML: {e}")))?;
        let root = doc.root_element();
        if root.tag_name().name() != "MPD" {
            return err(format!(
                "root element is <{}>, not <MPD>",
                root.tag_name().name()
            ));
        }
        let dur = |n: &str| root.attribute(n).map(parse_duration).transpose();
        let date = |n: &str| root.attribute(n).map(parse_datetime_ms).transpose();
        let mut mpd = Mpd {
            dynamic: root.attribute("type") == Some("dynamic"),
            availability_start_ms: date("availabilityStartTime")?,
            publish_time_ms: date("publishTime")?,
            minimum_update_period: dur("minimumUpdatePeriod")?,
            suggested_presentation_delay: dur("suggestedPresentationDelay")?,
            time_shift_buffer_depth: dur("timeShiftBufferDepth")?,
            media_presentation_duration: dur("mediaPresentationDuration")?,
            utc_timing: Vec::new(),
            periods: Vec::new(),
        };
        if mpd.dynamic && mpd.availability_start_ms.is_none() {
            return err("a dynamic MPD without availabilityStartTime");
        }
        let mpd_base = join_base(url, root)?;
        for child in root.children().filter(Node::is_element) {
            match child.tag_name().name() {
                "UTCTiming" => mpd.utc_timing.push((
                    child
                        .attribute("schemeIdUri")
                        .unwrap_or_default()
                        .to_owned(),
                    child.attribute("value").unwrap_or_default().to_owned(),
                )),
                "Period" => {
                    let start_s = child
                        .attribute("start")
                        .map(parse_duration)
                        .transpose()?
                        .map_or(0.0, |d| d.as_secs_f64());
                    let duration_s = child
                        .attribute("duration")
                        .map(parse_duration)
                        .transpose()?
                        .map(|d| d.as_secs_f64());
                    let base = join_base(&mpd_base, child)?;
                    let period_template = child_element(child, "SegmentTemplate");
                    let mut sets = Vec::new();
                    for set in children(child, "AdaptationSet") {
                        if let Some(s) = parse_set(set, period_template, &base)? {
                            sets.push(s);
                        }
                    }
                    mpd.periods.push(Period {
                        id: child.attribute("id").unwrap_or_default().to_owned(),
                        start_s,
                        duration_s,
                        adaptation_sets: sets,
                    });
                }
                _ => {}
            }
        }
        if mpd.periods.is_empty() {
            return err("no Period");
        }
        mpd.list_duration_segments()?;
        Ok(mpd)
    }

    /// Lists the segments of every `@duration` template (see the module documentation).
    fn list_duration_segments(&mut self) -> Result<(), MpdError> {
        let ast_ms = self.availability_start_ms.unwrap_or(0);
        let now_s = self.publish_time_ms.map(|p| (p - ast_ms) as f64 / 1000.0);
        let depth_s = self.time_shift_buffer_depth.map(|d| d.as_secs_f64());
        let dynamic = self.dynamic;
        let presentation_end_s = self.media_presentation_duration.map(|d| d.as_secs_f64());
        let starts: Vec<f64> = self.periods.iter().map(|p| p.start_s).collect();
        for (i, period) in self.periods.iter_mut().enumerate() {
            let end_s = period
                .duration_s
                .map(|d| period.start_s + d)
                .or_else(|| starts.get(i + 1).copied())
                .or(presentation_end_s);
            for set in &mut period.adaptation_sets {
                for rep in &mut set.representations {
                    let t = &mut rep.template;
                    let Some(d) = t.duration else { continue };
                    let d_s = d as f64 / t.timescale as f64;
                    // Period-relative times: segment k (from 0) covers [k·d, (k+1)·d).
                    let mut last = end_s.map(|e| ((e - period.start_s) / d_s).ceil() - 1.0);
                    if dynamic {
                        let now = now_s.ok_or_else(|| {
                            MpdError(format!(
                                "Representation {:?}: a live @duration template needs MPD@publishTime",
                                rep.id
                            ))
                        })? - period.start_s;
                        // Available once its end minus availabilityTimeOffset has passed.
                        let available = ((now + t.availability_time_offset_s) / d_s).floor() - 1.0;
                        last = Some(last.map_or(available, |l| l.min(available)));
                    }
                    let Some(last) = last else {
                        return err(format!(
                            "Representation {:?}: @duration without an end or a clock",
                            rep.id
                        ));
                    };
                    let first = match (dynamic, depth_s, now_s) {
                        (true, Some(depth), Some(now)) => {
                            (((now - period.start_s - depth) / d_s).ceil() - 1.0).max(0.0)
                        }
                        _ => 0.0,
                    };
                    if !first.is_finite() || !last.is_finite() {
                        return err(format!("Representation {:?}: times out of range", rep.id));
                    }
                    let mut k = first;
                    t.segments.clear();
                    while k <= last {
                        if t.segments.len() >= MAX_SEGMENTS {
                            return err(format!(
                                "Representation {:?}: more than {MAX_SEGMENTS} segments",
                                rep.id
                            ));
                        }
                        let number = t.start_number.checked_add(k as u64);
                        let start = (k as u64)
                            .checked_mul(d)
                            .and_then(|x| x.checked_add(t.presentation_time_offset));
                        let (Some(number), Some(start)) = (number, start) else {
                            return err(format!(
                                "Representation {:?}: segment number overflow",
                                rep.id
                            ));
                        };
                        if t.end_number.is_some_and(|e| number > e) {
                            break;
                        }
                        t.segments.push(Segment {
                            number,
                            start,
                            duration: d,
                        });
                        k += 1.0;
                    }
                }
            }
        }
        Ok(())
    }

    /// The last Period (where the live edge is).
    pub fn last_period(&self) -> Option<&Period> {
        self.periods.last()
    }

    /// The Period with this id.
    pub fn period(&self, id: &str) -> Option<&Period> {
        self.periods.iter().find(|p| p.id == id)
    }

    /// The Period after the one with this id.
    pub fn period_after(&self, id: &str) -> Option<&Period> {
        let i = self.periods.iter().position(|p| p.id == id)?;
        self.periods.get(i + 1)
    }

    /// Longest listed segment (s), if any.
    pub fn max_segment_s(&self) -> Option<f64> {
        self.periods
            .iter()
            .flat_map(|p| &p.adaptation_sets)
            .flat_map(|s| &s.representations)
            .flat_map(|r| {
                r.template
                    .segments
                    .iter()
                    .map(|s| s.duration as f64 / r.template.timescale as f64)
            })
            .max_by(f64::total_cmp)
    }
}

impl Period {
    /// The first AdaptationSet of this content type.
    pub fn set(&self, content: Content) -> Option<&AdaptationSet> {
        self.adaptation_sets.iter().find(|s| s.content == content)
    }
}

impl AdaptationSet {
    /// The Representation with this id.
    pub fn representation(&self, id: &str) -> Option<&Representation> {
        self.representations.iter().find(|r| r.id == id)
    }
}

impl Template {
    /// Start of `seg` in seconds from the Period start.
    pub fn start_s(&self, seg: &Segment) -> f64 {
        (seg.start as f64 - self.presentation_time_offset as f64) / self.timescale as f64
    }

    /// End of `seg` in seconds from the Period start.
    pub fn end_s(&self, seg: &Segment) -> f64 {
        (seg.start as f64 + seg.duration as f64 - self.presentation_time_offset as f64)
            / self.timescale as f64
    }

    /// The listed segment with this number.
    pub fn segment(&self, number: u64) -> Option<&Segment> {
        let first = self.segments.first()?.number;
        let s = self
            .segments
            .get(usize::try_from(number.checked_sub(first)?).ok()?)?;
        (s.number == number).then_some(s)
    }

    /// The listed segment whose interval holds `t` (s from the Period start); the first one if
    /// `t` is before it, `None` if `t` is after the last one.
    pub fn segment_at(&self, t: f64) -> Option<&Segment> {
        let first = self.segments.first()?;
        if t < self.start_s(first) {
            return Some(first);
        }
        self.segments.iter().find(|s| t < self.end_s(s))
    }
}

impl Representation {
    /// The URL of media segment `seg`.
    pub fn media_url(&self, seg: &Segment) -> Result<Url, MpdError> {
        let path = fill_template(&self.template.media, &self.id, self.bandwidth, Some(seg));
        join(&self.base_url, &path)
    }

    /// The init segment's URL, if the template has one.
    pub fn init_url(&self) -> Result<Option<Url>, MpdError> {
        let Some(init) = self.template.initialization.as_deref() else {
            return Ok(None);
        };
        let path = fill_template(init, &self.id, self.bandwidth, None);
        join(&self.base_url, &path).map(Some)
    }
}

fn join(base: &Url, reference: &str) -> Result<Url, MpdError> {
    base.join(reference)
        .map_err(|e| MpdError(format!("bad URL {reference:?}: {e}")))
}

fn children<'a, 'i>(n: Node<'a, 'i>, name: &'static str) -> impl Iterator<Item = Node<'a, 'i>> {
    n.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

fn child_element<'a, 'i>(n: Node<'a, 'i>, name: &'static str) -> Option<Node<'a, 'i>> {
    children(n, name).next()
}

/// `base` with the first `BaseURL` child of `n` resolved against it (`base` if none).
fn join_base(base: &Url, n: Node<'_, '_>) -> Result<Url, MpdError> {
    match child_element(n, "BaseURL")
        .and_then(|b| b.text())
        .map(str::trim)
    {
        Some(b) if !b.is_empty() => join(base, b),
        _ => Ok(base.clone()),
    }
}

fn content_of(set: Node<'_, '_>) -> Content {
    let first_rep = child_element(set, "Representation");
    let kind = set
        .attribute("contentType")
        .or_else(|| set.attribute("mimeType"))
        .or_else(|| first_rep.and_then(|r| r.attribute("mimeType")))
        .unwrap_or_default();
    if kind.starts_with("video") {
        Content::Video
    } else if kind.starts_with("audio") {
        Content::Audio
    } else {
        Content::Other
    }
}

fn parse_set(
    set: Node<'_, '_>,
    period_template: Option<Node<'_, '_>>,
    base: &Url,
) -> Result<Option<AdaptationSet>, MpdError> {
    let content = content_of(set);
    if content == Content::Other {
        // Text, thumbnails…: a player of audio and video does not fetch them.
        return Ok(None);
    }
    let set_template = child_element(set, "SegmentTemplate");
    let base = join_base(base, set)?;
    let mut reps = Vec::new();
    for rep in children(set, "Representation") {
        let id = rep
            .attribute("id")
            .ok_or_else(|| MpdError("a Representation without @id".into()))?;
        let bandwidth = rep
            .attribute("bandwidth")
            .ok_or_else(|| MpdError(format!("Representation {id:?} without @bandwidth")))?;
        let bandwidth: u64 = bandwidth.parse().map_err(|_| {
            MpdError(format!(
                "Representation {id:?}: bad @bandwidth {bandwidth:?}"
            ))
        })?;
        let size = match (rep.attribute("width"), rep.attribute("height")) {
            (Some(w), Some(h)) => w.parse().ok().zip(h.parse().ok()),
            _ => None,
        };
        let levels: Vec<Node<'_, '_>> = [
            period_template,
            set_template,
            child_element(rep, "SegmentTemplate"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if levels.is_empty() {
            return err(format!(
                "Representation {id:?} has no SegmentTemplate (only SegmentTemplate is supported)"
            ));
        }
        reps.push(Representation {
            id: id.to_owned(),
            bandwidth,
            size,
            base_url: join_base(&base, rep)?,
            template: parse_template(id, &levels)?,
        });
    }
    if reps.is_empty() {
        return Ok(None);
    }
    reps.sort_by_key(|r| r.bandwidth);
    Ok(Some(AdaptationSet {
        content,
        representations: reps,
    }))
}

/// Merges SegmentTemplates from the outermost to the innermost level.
fn parse_template(id: &str, levels: &[Node<'_, '_>]) -> Result<Template, MpdError> {
    let attr = |name: &str| levels.iter().rev().find_map(|n| n.attribute(name));
    let num = |name: &str, default: u64| -> Result<u64, MpdError> {
        match attr(name) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| {
                MpdError(format!(
                    "Representation {id:?}: bad SegmentTemplate@{name} {v:?}"
                ))
            }),
        }
    };
    let timescale = num("timescale", 1)?;
    if timescale == 0 {
        return err(format!("Representation {id:?}: zero timescale"));
    }
    let media = attr("media")
        .ok_or_else(|| {
            MpdError(format!(
                "Representation {id:?}: SegmentTemplate without @media"
            ))
        })?
        .to_owned();
    let start_number = num("startNumber", 1)?;
    let ato = match attr("availabilityTimeOffset") {
        None => 0.0,
        Some("INF") => 86_400.0,
        Some(v) => match v.trim().parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => x.min(86_400.0),
            _ => {
                return err(format!(
                    "Representation {id:?}: bad availabilityTimeOffset {v:?}"
                ))
            }
        },
    };
    let timeline = levels
        .iter()
        .rev()
        .find_map(|n| child_element(*n, "SegmentTimeline"));
    let duration = match (timeline, attr("duration")) {
        (Some(_), _) => None,
        (None, Some(_)) => match num("duration", 0)? {
            0 => {
                return err(format!(
                    "Representation {id:?}: SegmentTemplate@duration is 0"
                ))
            }
            d => Some(d),
        },
        (None, None) => {
            return err(format!(
            "Representation {id:?}: SegmentTemplate with neither a SegmentTimeline nor @duration"
        ))
        }
    };
    let end_number = attr("endNumber").map(|_| num("endNumber", 0)).transpose()?;
    Ok(Template {
        timescale,
        presentation_time_offset: num("presentationTimeOffset", 0)?,
        start_number,
        media,
        initialization: attr("initialization").map(str::to_owned),
        availability_time_offset_s: ato,
        availability_time_complete: attr("availabilityTimeComplete") != Some("false"),
        duration,
        end_number,
        // Segments by duration are listed once the Period's place is known (`Mpd::parse`).
        segments: match timeline {
            Some(timeline) => expand_timeline(id, timeline, start_number)?,
            None => Vec::new(),
        },
    })
}

fn expand_timeline(
    id: &str,
    timeline: Node<'_, '_>,
    start_number: u64,
) -> Result<Vec<Segment>, MpdError> {
    let bad = |what: &str, v: &str| MpdError(format!("Representation {id:?}: bad S@{what} {v:?}"));
    let mut out: Vec<Segment> = Vec::new();
    let mut next_t: u64 = 0;
    let mut number = start_number;
    let s_elems: Vec<Node<'_, '_>> = children(timeline, "S").collect();
    for (i, s) in s_elems.iter().enumerate() {
        let d: u64 = match s.attribute("d") {
            Some(v) => v.trim().parse().map_err(|_| bad("d", v))?,
            None => return err(format!("Representation {id:?}: S without @d")),
        };
        if d == 0 {
            return err(format!("Representation {id:?}: S@d is 0"));
        }
        let t = match s.attribute("t") {
            Some(v) => v.trim().parse().map_err(|_| bad("t", v))?,
            None => next_t,
        };
        let r: i64 = match s.attribute("r") {
            Some(v) => v.trim().parse().map_err(|_| bad("r", v))?,
            None => 0,
        };
        let count: u64 = if r >= 0 {
            r as u64 + 1
        } else {
            // r = -1: repeat until the next S@t (the open end of the last S is not supported).
            let next = s_elems
                .get(i + 1)
                .and_then(|n| n.attribute("t"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    MpdError(format!(
                        "Representation {id:?}: S@r=-1 without a following S@t"
                    ))
                })?;
            next.saturating_sub(t).div_ceil(d)
        };
        if count > (MAX_SEGMENTS - out.len()) as u64 {
            return err(format!(
                "Representation {id:?}: more than {MAX_SEGMENTS} segments"
            ));
        }
        let mut start = t;
        for _ in 0..count {
            out.push(Segment {
                number,
                start,
                duration: d,
            });
            number = number.checked_add(1).ok_or_else(|| {
                MpdError(format!("Representation {id:?}: segment number overflow"))
            })?;
            start = start
                .checked_add(d)
                .ok_or_else(|| MpdError(format!("Representation {id:?}: segment time overflow")))?;
        }
        next_t = start;
    }
    Ok(out)
}

/// Substitutes the DASH template identifiers (ISO/IEC 23009-1 5.3.9.4.4). Unknown identifiers
/// are left as they are; `$$` is a `$`.
pub fn fill_template(
    template: &str,
    rep_id: &str,
    bandwidth: u64,
    seg: Option<&Segment>,
) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('$') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('$') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let ident = &after[..close];
        let (name, width) = match ident.split_once('%') {
            Some((n, f)) => (
                n,
                f.strip_prefix('0')
                    .unwrap_or(f)
                    .strip_suffix('d')
                    .and_then(|w| w.parse::<usize>().ok()),
            ),
            None => (ident, None),
        };
        let value = match (name, seg) {
            ("", _) => Some("$".to_owned()),
            ("RepresentationID", _) => Some(rep_id.to_owned()),
            ("Bandwidth", _) => Some(bandwidth.to_string()),
            ("Number", Some(s)) => Some(s.number.to_string()),
            ("Time", Some(s)) => Some(s.start.to_string()),
            _ => None,
        };
        match value {
            Some(v) => {
                let w = width.unwrap_or(0).min(32);
                if v.len() < w && name != "RepresentationID" {
                    out.extend(std::iter::repeat_n('0', w - v.len()));
                }
                out.push_str(&v);
            }
            None => {
                out.push('$');
                out.push_str(ident);
                out.push('$');
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Parses an xs:duration (`PT2S`, `PT0.5S`, `P1DT2H3M4.5S`). Years and months have no fixed
/// length and are refused, as are negative durations.
pub fn parse_duration(s: &str) -> Result<Duration, MpdError> {
    let bad = || MpdError(format!("bad duration {s:?}"));
    let body = s.trim().strip_prefix('P').ok_or_else(bad)?;
    if body.is_empty() {
        return Err(bad());
    }
    let (date, time) = match body.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (body, None),
    };
    let mut secs = 0.0f64;
    let mut take = |part: &str, units: &[(char, f64)]| -> Result<(), MpdError> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
                continue;
            }
            let (_, mult) = units.iter().find(|(u, _)| *u == c).ok_or_else(bad)?;
            let v: f64 = num.parse().map_err(|_| bad())?;
            secs += v * mult;
            num.clear();
        }
        if num.is_empty() {
            Ok(())
        } else {
            Err(bad())
        }
    };
    take(date, &[('D', 86_400.0)])?;
    if let Some(t) = time {
        if t.is_empty() {
            return Err(bad());
        }
        take(t, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

/// Parses an xs:dateTime (`2024-11-25T11:58:38.123Z`, `…+01:00`; no zone is taken as UTC)
/// into ms since the Unix epoch.
pub fn parse_datetime_ms(s: &str) -> Result<i64, MpdError> {
    use time::{format_description::well_known::Rfc3339, OffsetDateTime, PrimitiveDateTime};
    let s = s.trim();
    let local = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| PrimitiveDateTime::parse(s, local).map(PrimitiveDateTime::assume_utc))
        .map_err(|_| MpdError(format!("bad date-time {s:?}")))?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| MpdError(format!("bad date-time {s:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from `ferrocast serve` (commit cff4b4f) while ffmpeg published a 1280×720
    /// testsrc2 stream: `curl http://127.0.0.1:PORT/live/cap/manifest.mpd`.
    const CAPTURED: &str = include_str!("../../tests/assets/ferrocast-live.mpd");
    /// Where it was fetched from.
    const CAPTURED_URL: &str = "http://127.0.0.1:8080/live/cap/manifest.mpd";

    fn url(u: &str) -> Url {
        Url::parse(u).unwrap()
    }

    fn parse(text: &str) -> Result<Mpd, MpdError> {
        Mpd::parse(text, &url(CAPTURED_URL))
    }

    #[test]
    fn durations_and_dates() {
        assert_eq!(parse_duration("PT2S").unwrap(), Duration::from_secs(2));
        assert_eq!(
            parse_duration("PT0.5S").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(parse_duration("PT10M").unwrap(), Duration::from_secs(600));
        assert_eq!(
            parse_duration("P1DT1H1M1.5S").unwrap(),
            Duration::from_millis(90_061_500)
        );
        assert_eq!(parse_duration("P0D").unwrap(), Duration::ZERO);
        for bad in [
            "", "P", "PT", "2S", "PT-1S", "P1Y", "PT1.2.3S", "PTS", "PT1", "PT1X", "PT1e400S",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_datetime_ms("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse_datetime_ms("2024-11-25T11:58:38.123Z").unwrap(),
            1_732_535_918_123
        );
        assert_eq!(
            parse_datetime_ms("2024-11-25T12:58:38.123+01:00").unwrap(),
            1_732_535_918_123
        );
        assert_eq!(
            parse_datetime_ms("2024-11-25T11:58:38.123").unwrap(),
            1_732_535_918_123
        );
        assert_eq!(
            parse_datetime_ms("2000-03-01T00:00:00Z").unwrap(),
            951_868_800_000
        );
        for bad in [
            "",
            "2024-11-25",
            "2024-13-01T00:00:00Z",
            "x-1-1T0:0:0Z",
            "2024-11-25T25:00Z",
            "2024-11-25T10:00:00+0100",
        ] {
            assert!(parse_datetime_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn templates() {
        let seg = Segment {
            number: 42,
            start: 90_000,
            duration: 360_000,
        };
        assert_eq!(
            fill_template("$RepresentationID$/$Number$.m4s", "v720", 1, Some(&seg)),
            "v720/42.m4s"
        );
        assert_eq!(
            fill_template("$RepresentationID$/init-p0.mp4", "a64", 1, None),
            "a64/init-p0.mp4"
        );
        assert_eq!(
            fill_template(
                "s_$Number%05d$_$Time$_$Bandwidth$_$$.m4s",
                "x",
                64000,
                Some(&seg)
            ),
            "s_00042_90000_64000_$.m4s"
        );
        assert_eq!(
            fill_template("odd$Nope$and$", "x", 1, Some(&seg)),
            "odd$Nope$and$"
        );
        assert_eq!(
            fill_template("$Number%099999999999999999999999d$", "x", 1, Some(&seg)),
            "42".to_owned()
        );
        assert_eq!(fill_template("$Number%040d$", "x", 1, Some(&seg)).len(), 32);
    }

    #[test]
    fn urls() {
        // What the players rely on from RFC 3986 resolution.
        let b = url("http://127.0.0.1:8080/live/cam/manifest.mpd?x=1");
        let j = |base: &Url, r: &str| join(base, r).unwrap().to_string();
        assert_eq!(
            j(&b, "v720/3.m4s"),
            "http://127.0.0.1:8080/live/cam/v720/3.m4s"
        );
        assert_eq!(j(&b, "/time"), "http://127.0.0.1:8080/time");
        assert_eq!(j(&b, "http://other/x"), "http://other/x");
        assert_eq!(j(&url("http://h:1"), "a"), "http://h:1/a");
        assert_eq!(b.origin().ascii_serialization(), "http://127.0.0.1:8080");
        assert_eq!(url("http://h").origin().ascii_serialization(), "http://h");
        assert!(Url::parse("nope").is_err());
        assert!(join(&b, "http://[::1").is_err());
    }

    #[test]
    fn parses_a_ferrocast_mpd_addressed_by_duration() {
        // Captured from `ferrocast serve` 12.58 s after the availability start; the Period
        // starts at 0.511 s, so at publishTime segments 0 and 1 are done and 2 is in progress
        // (available 0.2 s after its start: availabilityTimeOffset 3.8 of 4 s).
        let text = include_str!("../../tests/assets/ferrocast-live-duration.mpd");
        let m = Mpd::parse(text, &url(CAPTURED_URL)).unwrap();
        let p = m.last_period().unwrap();
        assert_eq!((p.start_s, p.duration_s), (0.511, None));
        let video = p.set(Content::Video).unwrap();
        let audio = p.set(Content::Audio).unwrap();
        for rep in video.representations.iter().chain(&audio.representations) {
            let t = &rep.template;
            let numbers: Vec<u64> = t.segments.iter().map(|s| s.number).collect();
            assert_eq!(numbers, [0, 1, 2], "{}", rep.id);
            assert_eq!(t.duration, Some(4 * t.timescale));
            for (k, seg) in t.segments.iter().enumerate() {
                assert_eq!(seg.start, k as u64 * 4 * t.timescale);
                assert_eq!(t.start_s(seg), 4.0 * k as f64);
            }
            assert!(rep
                .media_url(&t.segments[2])
                .unwrap()
                .as_str()
                .ends_with(&format!("/live/cap/1a25152d68e-77e7cc/{}/2.m4s", rep.id)));
        }
        assert_eq!(m.max_segment_s(), Some(4.0));
    }

    #[test]
    fn duration_addressing_follows_periods_the_window_and_end_number() {
        let mpd = |extra_p1: &str| {
            format!(
                r#"<MPD type="dynamic" availabilityStartTime="2026-01-01T00:00:00Z"
                     publishTime="2026-01-01T00:16:40Z" timeShiftBufferDepth="PT60S">
                  <Period id="p0" start="PT0S" duration="PT10S"><AdaptationSet contentType="video">
                    <SegmentTemplate timescale="1000" duration="4000" startNumber="0" media="$Number$.m4s"/>
                    <Representation id="v" bandwidth="1"/></AdaptationSet></Period>
                  <Period id="p1" start="PT900S"><AdaptationSet contentType="video">
                    <SegmentTemplate timescale="1000" duration="4000" startNumber="3" media="$Number$.m4s" {extra_p1}/>
                    <Representation id="v" bandwidth="1"/></AdaptationSet></Period>
                </MPD>"#
            )
        };
        let numbers = |m: &Mpd, period: usize| -> Vec<u64> {
            m.periods[period].adaptation_sets[0].representations[0]
                .template
                .segments
                .iter()
                .map(|s| s.number)
                .collect()
        };
        // 1,000 s in: p0 (3 segments by its duration) left the 60 s window; in p1 (100 s
        // old) the window holds its segments 9..=24 (from 40 s; 24 ends at 100 s).
        let m = parse(&mpd("")).unwrap();
        assert!(numbers(&m, 0).is_empty());
        assert_eq!(numbers(&m, 1), (12..=27).collect::<Vec<_>>());
        let m = parse(&mpd(r#"availabilityTimeOffset="4""#)).unwrap();
        assert_eq!(
            *numbers(&m, 1).last().unwrap(),
            28,
            "in progress from its start"
        );
        let m = parse(&mpd(r#"endNumber="20""#)).unwrap();
        assert_eq!(numbers(&m, 1), (12..=20).collect::<Vec<_>>());
        // Without a window (static, or no depth): every segment of p0 by its duration.
        let m = parse(&mpd("").replace(r#" timeShiftBufferDepth="PT60S""#, "")).unwrap();
        assert_eq!(numbers(&m, 0), [0, 1, 2]);
        assert_eq!(numbers(&m, 1).len(), 25);
        // What a live duration template cannot do without.
        for (bad, why) in [
            (
                mpd("").replace(r#"publishTime="2026-01-01T00:16:40Z""#, ""),
                "publishTime",
            ),
            (
                mpd("").replace(r#"duration="4000" startNumber="3""#, r#"duration="0""#),
                "is 0",
            ),
            (
                mpd("").replace(r#"duration="4000" startNumber="3""#, ""),
                "neither",
            ),
            (mpd(r#"endNumber="x""#), "endNumber"),
        ] {
            let e = parse(&bad).unwrap_err().0;
            assert!(e.contains(why), "{why}: {e}");
        }
    }

    #[test]
    fn parses_a_real_ferrocast_mpd() {
        let m = parse(CAPTURED).unwrap();
        assert!(m.dynamic);
        assert!(m.availability_start_ms.unwrap() > 1_600_000_000_000);
        assert!(m.publish_time_ms.unwrap() >= m.availability_start_ms.unwrap());
        assert_eq!(m.minimum_update_period, Some(Duration::from_secs(2)));
        assert_eq!(m.time_shift_buffer_depth, Some(Duration::from_secs(600)));
        assert!(m.suggested_presentation_delay.is_some());
        assert_eq!(
            m.utc_timing[0],
            ("urn:mpeg:dash:utc:http-iso:2014".into(), "/time".into())
        );
        let p = m.last_period().unwrap();
        let video = p.set(Content::Video).unwrap();
        let ids: Vec<&str> = video
            .representations
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(ids, ["v400", "v720"], "ascending bandwidth");
        assert!(video.representations[0].bandwidth < video.representations[1].bandwidth);
        assert_eq!(video.representations[1].size, Some((720, 720)));
        let audio = p.set(Content::Audio).unwrap();
        assert_eq!(audio.representations[0].id, "a64");
        for rep in video.representations.iter().chain(&audio.representations) {
            let t = &rep.template;
            assert!(t.segments.len() >= 3, "{rep:?}");
            // Consecutive numbers, contiguous times, 4 s each but the one in progress.
            for w in t.segments.windows(2) {
                assert_eq!(w[1].number, w[0].number + 1);
                assert_eq!(w[1].start, w[0].start + w[0].duration);
            }
            // (audio frames do not divide 4 s exactly; the last one is in progress, listed
            // with the duration predicted for it)
            let (last, done) = t.segments.split_last().unwrap();
            for s in done {
                let d = s.duration as f64 / t.timescale as f64;
                assert!((3.9..=4.1).contains(&d), "{d}");
            }
            let d = last.duration as f64 / t.timescale as f64;
            assert!((3.0..=4.1).contains(&d), "{d}");
            assert!((t.availability_time_offset_s - 3.5).abs() < 1e-9);
            assert!(!t.availability_time_complete);
            let first = t.segments[0];
            assert_eq!(
                rep.media_url(&first).unwrap().as_str(),
                format!(
                    "http://127.0.0.1:8080/live/cap/{}/{}.m4s",
                    rep.id, first.number
                )
            );
            assert_eq!(
                rep.init_url().unwrap().unwrap().as_str(),
                format!(
                    "http://127.0.0.1:8080/live/cap/{}/init-{}.mp4",
                    rep.id, p.id
                )
            );
            assert_eq!(t.segment(first.number + 1), t.segments.get(1));
            assert_eq!(t.segment(first.number.wrapping_sub(1)), None);
            assert_eq!(t.segment_at(t.start_s(&first) + 4.5), t.segments.get(1));
            assert_eq!(t.segment_at(-1e9), Some(&first));
            assert_eq!(t.segment_at(1e12), None);
        }
        assert!((m.max_segment_s().unwrap() - 4.0).abs() < 0.1);
        // Audio and video line up in time (audio frames of 1024 samples end near, not on, 4 s).
        let (v, a) = (
            &video.representations[0].template,
            &audio.representations[0].template,
        );
        let (vs, as_) = (v.start_s(&v.segments[1]), a.start_s(&a.segments[1]));
        assert!((vs - as_).abs() < 0.15, "{vs} vs {as_}");
    }

    #[test]
    fn inheritance_base_urls_and_repeats() {
        let xml = r#"<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" availabilityStartTime="2024-01-01T00:00:00Z" minimumUpdatePeriod="PT1S">
          <BaseURL>media/</BaseURL>
          <Period id="a" start="PT10S">
            <SegmentTemplate timescale="1000" media="$RepresentationID$-$Number$.m4s" startNumber="5"/>
            <AdaptationSet mimeType="video/mp4">
              <SegmentTemplate initialization="$RepresentationID$-init.mp4"><SegmentTimeline><S t="2000" d="2000" r="2"/><S d="1000"/></SegmentTimeline></SegmentTemplate>
              <Representation id="hi" bandwidth="3000000"/>
              <Representation id="lo" bandwidth="300000"><BaseURL>low/</BaseURL><SegmentTemplate timescale="10" presentationTimeOffset="20"><SegmentTimeline><S t="20" d="20" r="-1"/><S t="80" d="5"/></SegmentTimeline></SegmentTemplate></Representation>
            </AdaptationSet>
            <AdaptationSet><Representation id="t" mimeType="text/vtt" bandwidth="1"/></AdaptationSet>
          </Period>
        </MPD>"#;
        let m = Mpd::parse(xml, &url("http://h/live/x/manifest.mpd")).unwrap();
        let p = &m.periods[0];
        assert_eq!(p.start_s, 10.0);
        let v = p.set(Content::Video).unwrap();
        let lo = &v.representations[0];
        assert_eq!(lo.id, "lo");
        assert_eq!(lo.template.timescale, 10);
        assert_eq!(lo.template.segments.len(), 4); // 20, 40, 60 (r=-1 up to 80), 80
        assert_eq!(lo.template.start_s(&lo.template.segments[0]), 0.0);
        assert_eq!(
            lo.media_url(&lo.template.segments[1]).unwrap().as_str(),
            "http://h/live/x/media/low/lo-6.m4s"
        );
        assert_eq!(
            lo.init_url().unwrap().unwrap().as_str(),
            "http://h/live/x/media/low/lo-init.mp4"
        );
        let hi = &v.representations[1];
        let n: Vec<(u64, u64)> = hi
            .template
            .segments
            .iter()
            .map(|s| (s.number, s.start))
            .collect();
        assert_eq!(n, [(5, 2000), (6, 4000), (7, 6000), (8, 8000)]);
        assert_eq!(hi.template.segments[3].duration, 1000);
        assert!(p.set(Content::Other).is_none(), "text is skipped");
        // A BaseURL with a path or a host of its own replaces what is above it instead of
        // being appended to it.
        let hi_url = hi.media_url(&hi.template.segments[0]).unwrap();
        assert_eq!(hi_url.as_str(), "http://h/live/x/media/hi-5.m4s");
        let abs = xml
            .replace("<BaseURL>low/</BaseURL>", "<BaseURL>/abs/</BaseURL>")
            .replace(
                "<BaseURL>media/</BaseURL>",
                "<BaseURL>http://cdn:81/m/</BaseURL>",
            );
        let m = Mpd::parse(&abs, &url("http://h/live/x/manifest.mpd")).unwrap();
        let v = m.periods[0].set(Content::Video).unwrap();
        let (lo, hi) = (&v.representations[0], &v.representations[1]);
        assert_eq!(
            lo.init_url().unwrap().unwrap().as_str(),
            "http://cdn:81/abs/lo-init.mp4"
        );
        assert_eq!(
            hi.init_url().unwrap().unwrap().as_str(),
            "http://cdn:81/m/hi-init.mp4"
        );
    }

    #[test]
    fn hostile_mpds_are_errors_not_panics() {
        let wrap = |inner: &str| {
            format!(
                r#"<MPD type="dynamic" availabilityStartTime="2024-01-01T00:00:00Z"><Period><AdaptationSet contentType="video">{inner}</AdaptationSet></Period></MPD>"#
            )
        };
        let rep = |tmpl: &str| {
            wrap(&format!(
                r#"<Representation id="v" bandwidth="1">{tmpl}</Representation>"#
            ))
        };
        let cases = [
            "".to_owned(),
            "<MPD".to_owned(),
            "<html/>".to_owned(),
            "<MPD/>".to_owned(),
            r#"<MPD type="dynamic"><Period/></MPD>"#.to_owned(),
            r#"<MPD type="dynamic" availabilityStartTime="yesterday"><Period/></MPD>"#.to_owned(),
            wrap(r#"<Representation bandwidth="1"/>"#),
            wrap(r#"<Representation id="v" bandwidth="-5"/>"#),
            wrap(r#"<Representation id="v" bandwidth="1"/>"#),
            rep(r#"<SegmentTemplate media="$Number$"/>"#),
            rep(r#"<SegmentTemplate timescale="0" media="x"><SegmentTimeline><S d="1"/></SegmentTimeline></SegmentTemplate>"#),
            rep(r#"<SegmentTemplate><SegmentTimeline><S d="1"/></SegmentTimeline></SegmentTemplate>"#),
            rep(r#"<SegmentTemplate media="x"><SegmentTimeline><S d="0"/></SegmentTimeline></SegmentTemplate>"#),
            rep(r#"<SegmentTemplate media="x"><SegmentTimeline><S/></SegmentTimeline></SegmentTemplate>"#),
            rep(r#"<SegmentTemplate media="x"><SegmentTimeline><S d="1" r="99999999999"/></SegmentTimeline></SegmentTemplate>"#),
            rep(r#"<SegmentTemplate media="x"><SegmentTimeline><S d="1" r="-1"/></SegmentTimeline></SegmentTemplate>"#),
            rep(r#"<SegmentTemplate media="x"><SegmentTimeline><S t="18446744073709551615" d="2" r="1"/></SegmentTimeline></SegmentTemplate>"#),
            rep(r#"<SegmentTemplate media="x" startNumber="18446744073709551615"><SegmentTimeline><S d="2" r="1"/></SegmentTimeline></SegmentTemplate>"#),
            rep(r#"<SegmentTemplate media="x" availabilityTimeOffset="NaN"><SegmentTimeline><S d="2"/></SegmentTimeline></SegmentTemplate>"#),
            "<!DOCTYPE x [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\"><!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\"><!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\"><!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\"><!ENTITY g \"&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;\"><!ENTITY h \"&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;\">]><MPD a=\"&h;\"/>".to_owned(),
            "x".repeat(MAX_MPD_BYTES + 1),
        ];
        for c in &cases {
            assert!(parse(c).is_err(), "accepted: {}", &c[..c.len().min(300)]);
        }
        // Every prefix of a real MPD, and single-byte corruptions of it: no panic.
        for cut in (0..CAPTURED.len()).step_by(7) {
            let _ = parse(&CAPTURED[..cut]);
        }
        let bytes = CAPTURED.as_bytes();
        for i in (0..bytes.len()).step_by(5) {
            for b in [b'"', b'<', b'9', b'-', b'>'] {
                let mut v = bytes.to_vec();
                v[i] = b;
                if let Ok(s) = std::str::from_utf8(&v) {
                    let _ = parse(s);
                }
            }
        }
    }

    /// The MPDs the server writes (`cmaf::Manifest`): a republish (two Periods), low latency,
    /// every UTCTiming kind, the end of the stream. What the model says is what is read back.
    #[test]
    fn reads_what_the_server_renders() {
        use cmaf::{
            AdaptationSet as Set, ContentType, Format, FrameRate, LowLatency, Manifest,
            Period as P, Representation as R, SegmentRef, UtcTiming,
        };
        let ast: u64 = 1_764_000_000_123;
        let rep = |id: &str, bandwidth, timescale, format, n: u64, d: u64| R {
            id: id.into(),
            bandwidth,
            codecs: "avc1.64001f".into(),
            timescale,
            presentation_time_offset: 0,
            format,
            segments: (0..n)
                .map(|i| SegmentRef {
                    number: 10 + i,
                    start: i * d,
                    duration: d,
                })
                .collect(),
            in_progress: None,
            parts: Default::default(),
        };
        let video = Format::Video {
            width: 1280,
            height: 720,
            frame_rate: Some(FrameRate {
                num: 30000,
                den: 1001,
            }),
            sar: (1, 1),
        };
        let audio = Format::Audio {
            sampling_rate: 48_000,
            channels: 2,
        };
        let period = |id: &str, start_s: u64| {
            let mut v = Set::new(0, ContentType::Video);
            v.representations = vec![
                rep("v720", 1_500_000, 15_360, video, 5, 61_440),
                rep("v400", 500_000, 15_360, video, 5, 61_440),
            ];
            let mut a = Set::new(1, ContentType::Audio);
            a.lang = Some("en".into());
            a.representations = vec![rep("a64", 64_000, 48_000, audio, 5, 192_000)];
            P {
                id: id.into(),
                start: Duration::from_secs(start_s),
                adaptation_sets: vec![v, a],
                ..Default::default()
            }
        };
        let mut m = Manifest::new(ast, ast + 70_000);
        m.periods = vec![period("p0", 0), period("p1", 50)];
        m.utc_timing = vec![
            UtcTiming::HttpIso("/time".into()),
            UtcTiming::HttpXsDate("http://127.0.0.1:8080/time".into()),
            UtcTiming::HttpHead("/".into()),
            UtcTiming::Direct,
        ];
        m.low_latency = Some(LowLatency {
            availability_time_offset: Duration::from_millis(3500),
            target_latency: Duration::from_millis(2500),
            min_latency: Some(Duration::from_millis(1500)),
            max_latency: None,
            playback_rate: Some((0.96, 1.04)),
        });
        let base = url("http://127.0.0.1:8080/live/cam/manifest.mpd");
        for ended in [false, true] {
            m.ended = ended;
            let xml = m.render().unwrap();
            let got = Mpd::parse(&xml, &base).unwrap_or_else(|e| panic!("{e}\n{xml}"));
            assert!(got.dynamic);
            assert_eq!(got.availability_start_ms, Some(ast as i64));
            assert_eq!(got.publish_time_ms, Some(ast as i64 + 70_000));
            assert_eq!(got.time_shift_buffer_depth, Some(m.time_shift_buffer_depth));
            assert_eq!(
                got.suggested_presentation_delay,
                Some(m.suggested_presentation_delay)
            );
            assert_eq!(
                got.minimum_update_period,
                (!ended).then_some(m.min_update_period)
            );
            assert_eq!(got.media_presentation_duration.is_some(), ended);
            let schemes: Vec<&str> = got.utc_timing.iter().map(|u| u.0.as_str()).collect();
            assert_eq!(
                schemes,
                [
                    "urn:mpeg:dash:utc:http-iso:2014",
                    "urn:mpeg:dash:utc:http-xsdate:2014",
                    "urn:mpeg:dash:utc:http-head:2014",
                    "urn:mpeg:dash:utc:direct:2014"
                ]
            );
            assert_eq!(got.utc_timing[0].1, "/time");
            let ids: Vec<(&str, f64)> = got
                .periods
                .iter()
                .map(|p| (p.id.as_str(), p.start_s))
                .collect();
            assert_eq!(ids, [("p0", 0.0), ("p1", 50.0)]);
            assert_eq!(got.period_after("p0").map(|p| p.id.as_str()), Some("p1"));
            for p in &got.periods {
                let v = p.set(Content::Video).unwrap();
                let reps: Vec<(&str, u64)> = v
                    .representations
                    .iter()
                    .map(|r| (r.id.as_str(), r.bandwidth))
                    .collect();
                assert_eq!(reps, [("v400", 500_000), ("v720", 1_500_000)]);
                assert_eq!(v.representations[1].size, Some((1280, 720)));
                let a = p.set(Content::Audio).unwrap();
                assert_eq!(a.representations[0].id, "a64");
                for r in v.representations.iter().chain(&a.representations) {
                    let t = &r.template;
                    assert!((t.availability_time_offset_s - 3.5).abs() < 1e-9);
                    assert!(!t.availability_time_complete);
                    let numbers: Vec<u64> = t.segments.iter().map(|s| s.number).collect();
                    assert_eq!(numbers, [10, 11, 12, 13, 14], "{}", r.id);
                    assert!((t.end_s(&t.segments[4]) - 20.0).abs() < 1e-9);
                    assert_eq!(
                        r.media_url(&t.segments[2]).unwrap().as_str(),
                        format!("http://127.0.0.1:8080/live/cam/{}/12.m4s", r.id)
                    );
                    assert_eq!(
                        r.init_url().unwrap().unwrap().as_str(),
                        format!("http://127.0.0.1:8080/live/cam/{}/init.mp4", r.id)
                    );
                }
            }
            assert!((got.max_segment_s().unwrap() - 4.0).abs() < 1e-9);
        }
    }
}
