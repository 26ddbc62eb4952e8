//! A checker of the RFC 8216 / draft-pantos-hls-rfc8216bis rules our playlists rely on, over
//! playlist text from anywhere (our renderer in unit tests, a running server in the
//! integration tests). It parses what it checks and returns it, so a test can compare the
//! playlist with the bytes it names (a segment's size against the sum of its parts).
//!
//! Rules, each reported with its section:
//! - 4.3.1.1 `#EXTM3U` first; 4.3.3.1 `EXT-X-TARGETDURATION` present, every `EXTINF`
//!   rounded at most that; 4.3.3.2 (6.2.2) `EXT-X-MEDIA-SEQUENCE` present.
//! - 7 (8 in 8216bis) `EXT-X-VERSION`: ≥ 3 for decimal `EXTINF`, ≥ 4 for `EXT-X-BYTERANGE`,
//!   ≥ 6 for `EXT-X-MAP` in a media playlist.
//! - 4.4.4.5 `EXT-X-MAP` before the first segment; every `EXTINF` followed by its URI.
//! - 4.4.3.7 `EXT-X-PART-INF:PART-TARGET` present exactly when there are parts; 4.4.3.8
//!   `EXT-X-SERVER-CONTROL` with `CAN-BLOCK-RELOAD=YES` and `PART-HOLD-BACK` ≥ 3 ×
//!   `PART-TARGET` (the spec's SHOULD; its MUST is 2 ×).
//! - 4.4.4.9 every part at most `PART-TARGET` long, and at least 85 % of it unless it is
//!   `INDEPENDENT=YES` or the last of its segment; parts as byte ranges of their segment
//!   (same URI), contiguous from offset 0; a finished segment's parts summing to its
//!   `EXTINF`; with `EXT-X-INDEPENDENT-SEGMENTS`, a segment's first part independent.
//! - 6.2.2 no parts for a segment ending more than three target durations before the end of
//!   the playlist.
//! - 4.4.5.3 at most one `EXT-X-PRELOAD-HINT:TYPE=PART`, none with `EXT-X-ENDLIST`, and it
//!   follows the last part: the segment in progress from where its last part ends, or the
//!   next segment from byte 0.
//! - 4.4.5.4 `EXT-X-RENDITION-REPORT` with a URI and decimal `LAST-MSN`/`LAST-PART`.
//! - 4.3.3.4 nothing after `EXT-X-ENDLIST`.
//! - 4.3.3.5 `EXT-X-PLAYLIST-TYPE` is `EVENT` or `VOD`, at most once; a `VOD` playlist ends
//!   with `EXT-X-ENDLIST` and has no parts or preload hint (it never changes).
//! - Master (4.4.6.2): every `EXT-X-STREAM-INF` with `BANDWIDTH`, `CODECS` and (for video)
//!   `RESOLUTION`, followed by its URI; its `AUDIO` group defined by an `EXT-X-MEDIA`.
//!
//! Untrusted text never panics and costs memory linear in its size.

use std::collections::HashMap;

/// A rule a playlist breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The section and rule, e.g. `4.4.4.9 PART-TARGET ≥ part duration`.
    pub rule: &'static str,
    /// 1-based line of the offending tag (0: the playlist as a whole).
    pub line: usize,
    /// What was found.
    pub detail: String,
}

/// An `EXT-X-PART` as read.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedPart {
    /// `DURATION`, seconds.
    pub duration: f64,
    /// `URI`.
    pub uri: String,
    /// Where it starts in its resource (`BYTERANGE` offset; after the previous part when
    /// left out).
    pub offset: u64,
    /// `BYTERANGE` length (`None` when the part is a whole resource).
    pub length: Option<u64>,
    /// `INDEPENDENT=YES`.
    pub independent: bool,
}

/// A segment as read: a finished one (with its `EXTINF`) or the one in progress.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedSegment {
    /// Its Media Sequence Number (`EXT-X-MEDIA-SEQUENCE` + position).
    pub msn: u64,
    /// Its URI (for the one in progress: its parts' URI).
    pub uri: String,
    /// `EXTINF` seconds (`None` for the segment in progress).
    pub duration: Option<f64>,
    /// Its parts, in order (none when it is not listed with parts).
    pub parts: Vec<CheckedPart>,
}

/// `EXT-X-PRELOAD-HINT:TYPE=PART`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreloadHint {
    /// `URI`.
    pub uri: String,
    /// `BYTERANGE-START` (0 when absent).
    pub start: u64,
    /// `BYTERANGE-LENGTH`, when given.
    pub length: Option<u64>,
}

/// `EXT-X-RENDITION-REPORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenditionReport {
    /// `URI`, relative to the playlist.
    pub uri: String,
    /// `LAST-MSN`.
    pub last_msn: Option<u64>,
    /// `LAST-PART`.
    pub last_part: Option<u32>,
}

/// A media playlist as read, and the rules it breaks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaReport {
    /// `EXT-X-VERSION`.
    pub version: Option<u32>,
    /// `EXT-X-TARGETDURATION`, seconds.
    pub target_duration: Option<u64>,
    /// `PART-TARGET`, seconds.
    pub part_target: Option<f64>,
    /// `PART-HOLD-BACK`, seconds.
    pub part_hold_back: Option<f64>,
    /// `CAN-BLOCK-RELOAD=YES`.
    pub can_block_reload: bool,
    /// `EXT-X-MEDIA-SEQUENCE` (0 when absent).
    pub media_sequence: u64,
    /// The finished segments.
    pub segments: Vec<CheckedSegment>,
    /// The segment in progress: parts after the last segment URI.
    pub open: Option<CheckedSegment>,
    /// The part preload hint.
    pub hint: Option<PreloadHint>,
    /// The rendition reports.
    pub reports: Vec<RenditionReport>,
    /// `EXT-X-ENDLIST`.
    pub ended: bool,
    /// `EXT-X-PLAYLIST-TYPE` (`VOD`, `EVENT`), when given.
    pub playlist_type: Option<String>,
    /// Every rule broken.
    pub violations: Vec<Violation>,
}

impl MediaReport {
    /// The Media Sequence Number and part index of the last part listed.
    pub fn last_part(&self) -> Option<(u64, usize)> {
        self.open
            .iter()
            .chain(self.segments.iter().rev())
            .find(|s| !s.parts.is_empty())
            .map(|s| (s.msn, s.parts.len() - 1))
    }
}

/// An attribute list (`A=1,B="x,y",C=NAME`), in order; quotes removed. `None` if it is
/// not well formed.
fn attributes(list: &str) -> Option<Vec<(&str, &str)>> {
    let mut out = Vec::new();
    let mut rest = list;
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
        {
            return None;
        }
        let (value, after) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        out.push((key, value));
        rest = match after.strip_prefix(',') {
            Some(r) => r,
            None if after.is_empty() => after,
            None => return None,
        };
    }
    Some(out)
}

fn attr<'a>(list: &[(&str, &'a str)], key: &str) -> Option<&'a str> {
    list.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

fn decimal(s: &str) -> Option<u64> {
    (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn seconds(s: &str) -> Option<f64> {
    let ok = !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    ok.then(|| s.parse::<f64>().ok())
        .flatten()
        .filter(|v| v.is_finite())
}

/// `n[@o]`.
fn byte_range(s: &str) -> Option<(u64, Option<u64>)> {
    match s.split_once('@') {
        Some((n, o)) => Some((decimal(n)?, Some(decimal(o)?))),
        None => Some((decimal(s)?, None)),
    }
}

struct Checker {
    report: MediaReport,
}

impl Checker {
    fn fail(&mut self, rule: &'static str, line: usize, detail: impl Into<String>) {
        self.report.violations.push(Violation {
            rule,
            line,
            detail: detail.into(),
        });
    }
}

/// Reads a media playlist and checks it against the rules in the module documentation.
pub fn check_media(text: &str) -> MediaReport {
    let mut c = Checker {
        report: MediaReport::default(),
    };
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end()));
    match lines.next() {
        Some((_, "#EXTM3U")) => {}
        _ => c.fail("4.3.1.1 #EXTM3U first", 1, "the first line is not #EXTM3U"),
    }
    let mut map_seen = false;
    let mut map_line = 0;
    let mut decimal_extinf = false;
    let mut byterange_tag = false;
    let mut independent_segments = false;
    let mut media_sequence_seen = false;
    let mut pending_extinf: Option<(usize, f64)> = None;
    // Parts since the last segment URI: (line, part).
    let mut parts: Vec<(usize, CheckedPart)> = Vec::new();
    let mut hints = 0;
    let mut endlist_line = 0;
    let mut finished: Vec<(usize, CheckedSegment)> = Vec::new();
    for (n, line) in lines.by_ref() {
        if line.is_empty() {
            continue;
        }
        if endlist_line > 0 {
            c.fail(
                "4.3.3.4 EXT-X-ENDLIST last",
                n,
                format!("{line:?} after EXT-X-ENDLIST"),
            );
        }
        if !line.starts_with('#') {
            // A segment URI.
            let Some((_, secs)) = pending_extinf.take() else {
                c.fail(
                    "4.3.2.1 EXTINF before each URI",
                    n,
                    format!("URI {line:?} without EXTINF"),
                );
                continue;
            };
            if !map_seen {
                c.fail(
                    "4.4.4.5 EXT-X-MAP before the segments",
                    n,
                    "segment before any EXT-X-MAP",
                );
            }
            let seg = CheckedSegment {
                msn: 0,
                uri: line.to_owned(),
                duration: Some(secs),
                parts: parts.drain(..).map(|(_, p)| p).collect(),
            };
            finished.push((n, seg));
            continue;
        }
        let (tag, value) = line.split_once(':').unwrap_or((line, ""));
        match tag {
            "#EXT-X-VERSION" => {
                c.report.version = decimal(value).and_then(|v| u32::try_from(v).ok())
            }
            "#EXT-X-TARGETDURATION" => {
                c.report.target_duration = decimal(value);
                if c.report.target_duration.is_none() {
                    c.fail(
                        "4.3.3.1 EXT-X-TARGETDURATION",
                        n,
                        format!("not a decimal integer: {value:?}"),
                    );
                }
            }
            "#EXT-X-MEDIA-SEQUENCE" => {
                media_sequence_seen = true;
                match decimal(value) {
                    Some(v) => c.report.media_sequence = v,
                    None => c.fail(
                        "4.3.3.2 EXT-X-MEDIA-SEQUENCE",
                        n,
                        format!("not a decimal integer: {value:?}"),
                    ),
                }
            }
            "#EXT-X-PLAYLIST-TYPE" => {
                if c.report.playlist_type.is_some() {
                    c.fail("4.3.3.5 EXT-X-PLAYLIST-TYPE", n, "given twice");
                }
                if value != "VOD" && value != "EVENT" {
                    c.fail(
                        "4.3.3.5 EXT-X-PLAYLIST-TYPE",
                        n,
                        format!("{value:?} is neither EVENT nor VOD"),
                    );
                }
                c.report.playlist_type = Some(value.chars().take(16).collect());
            }
            "#EXT-X-INDEPENDENT-SEGMENTS" => independent_segments = true,
            "#EXT-X-BYTERANGE" => byterange_tag = true,
            "#EXT-X-MAP" => {
                map_seen = true;
                map_line = n;
                if attributes(value)
                    .and_then(|a| attr(&a, "URI").map(str::to_owned))
                    .is_none()
                {
                    c.fail("4.4.4.5 EXT-X-MAP", n, "no URI");
                }
            }
            "#EXTINF" => {
                let secs = value.split(',').next().and_then(seconds);
                match secs {
                    Some(s) => {
                        decimal_extinf |= value.split(',').next().is_some_and(|v| v.contains('.'));
                        if pending_extinf.replace((n, s)).is_some() {
                            c.fail(
                                "4.3.2.1 EXTINF before each URI",
                                n,
                                "two EXTINF without a URI between them",
                            );
                        }
                    }
                    None => c.fail("4.3.2.1 EXTINF", n, format!("bad duration in {value:?}")),
                }
            }
            "#EXT-X-SERVER-CONTROL" => match attributes(value) {
                Some(a) => {
                    c.report.can_block_reload = attr(&a, "CAN-BLOCK-RELOAD") == Some("YES");
                    c.report.part_hold_back = attr(&a, "PART-HOLD-BACK").and_then(seconds);
                }
                None => c.fail(
                    "4.4.3.8 EXT-X-SERVER-CONTROL",
                    n,
                    "malformed attribute list",
                ),
            },
            "#EXT-X-PART-INF" => {
                c.report.part_target =
                    attributes(value).and_then(|a| attr(&a, "PART-TARGET").and_then(seconds));
                if c.report.part_target.is_none() {
                    c.fail("4.4.3.7 EXT-X-PART-INF", n, "no PART-TARGET");
                }
            }
            "#EXT-X-PART" => {
                let Some(a) = attributes(value) else {
                    c.fail("4.4.4.9 EXT-X-PART", n, "malformed attribute list");
                    continue;
                };
                let (Some(duration), Some(uri)) =
                    (attr(&a, "DURATION").and_then(seconds), attr(&a, "URI"))
                else {
                    c.fail("4.4.4.9 EXT-X-PART", n, "DURATION and URI are required");
                    continue;
                };
                if !map_seen {
                    c.fail(
                        "4.4.4.5 EXT-X-MAP before the segments",
                        n,
                        "part before any EXT-X-MAP",
                    );
                }
                let range = match attr(&a, "BYTERANGE") {
                    None => None,
                    Some(r) => match byte_range(r) {
                        Some(r) => Some(r),
                        None => {
                            c.fail(
                                "4.4.4.9 EXT-X-PART BYTERANGE",
                                n,
                                format!("bad BYTERANGE {r:?}"),
                            );
                            continue;
                        }
                    },
                };
                let previous_end = parts
                    .last()
                    .filter(|(_, p)| p.uri == uri)
                    .and_then(|(_, p)| p.length.map(|l| p.offset + l));
                let (offset, length) = match range {
                    None => (0, None),
                    Some((len, Some(off))) => (off, Some(len)),
                    Some((len, None)) => match previous_end {
                        Some(end) => (end, Some(len)),
                        None => {
                            c.fail(
                                "4.4.4.9 EXT-X-PART BYTERANGE",
                                n,
                                "no offset and no previous part of the same URI",
                            );
                            (0, Some(len))
                        }
                    },
                };
                parts.push((
                    n,
                    CheckedPart {
                        duration,
                        uri: uri.to_owned(),
                        offset,
                        length,
                        independent: attr(&a, "INDEPENDENT") == Some("YES"),
                    },
                ));
            }
            "#EXT-X-PRELOAD-HINT" => {
                let Some(a) = attributes(value) else {
                    c.fail("4.4.5.3 EXT-X-PRELOAD-HINT", n, "malformed attribute list");
                    continue;
                };
                if attr(&a, "TYPE") != Some("PART") {
                    continue;
                }
                hints += 1;
                if hints > 1 {
                    c.fail(
                        "4.4.5.3 one PRELOAD-HINT per TYPE",
                        n,
                        "a second TYPE=PART hint",
                    );
                }
                let Some(uri) = attr(&a, "URI") else {
                    c.fail("4.4.5.3 EXT-X-PRELOAD-HINT", n, "no URI");
                    continue;
                };
                let start = attr(&a, "BYTERANGE-START").map(decimal);
                let length = attr(&a, "BYTERANGE-LENGTH").map(decimal);
                if start == Some(None) || length == Some(None) {
                    c.fail(
                        "4.4.5.3 EXT-X-PRELOAD-HINT",
                        n,
                        "BYTERANGE-START/LENGTH not decimal",
                    );
                }
                c.report.hint = Some(PreloadHint {
                    uri: uri.to_owned(),
                    start: start.flatten().unwrap_or(0),
                    length: length.flatten(),
                });
            }
            "#EXT-X-RENDITION-REPORT" => {
                let Some(a) = attributes(value) else {
                    c.fail(
                        "4.4.5.4 EXT-X-RENDITION-REPORT",
                        n,
                        "malformed attribute list",
                    );
                    continue;
                };
                let Some(uri) = attr(&a, "URI") else {
                    c.fail("4.4.5.4 EXT-X-RENDITION-REPORT", n, "no URI");
                    continue;
                };
                let msn = attr(&a, "LAST-MSN").map(decimal);
                let part =
                    attr(&a, "LAST-PART").map(|p| decimal(p).and_then(|v| u32::try_from(v).ok()));
                if msn == Some(None) || part == Some(None) {
                    c.fail(
                        "4.4.5.4 EXT-X-RENDITION-REPORT",
                        n,
                        "LAST-MSN/LAST-PART not decimal",
                    );
                }
                c.report.reports.push(RenditionReport {
                    uri: uri.to_owned(),
                    last_msn: msn.flatten(),
                    last_part: part.flatten(),
                });
            }
            "#EXT-X-ENDLIST" => {
                c.report.ended = true;
                endlist_line = n;
            }
            _ => {}
        }
    }
    if let Some((n, _)) = pending_extinf {
        c.fail(
            "4.3.2.1 EXTINF before each URI",
            n,
            "EXTINF without its URI",
        );
    }
    // Sequence numbers and the segment in progress.
    let ms = c.report.media_sequence;
    for (i, (_, s)) in finished.iter_mut().enumerate() {
        s.msn = ms + i as u64;
    }
    let open_lines: Vec<usize> = parts.iter().map(|(n, _)| *n).collect();
    let open = (!parts.is_empty()).then(|| CheckedSegment {
        msn: ms + finished.len() as u64,
        uri: parts[0].1.uri.clone(),
        duration: None,
        parts: parts.into_iter().map(|(_, p)| p).collect(),
    });

    rules(
        &mut c,
        &finished,
        open.as_ref().map(|o| (o, open_lines.as_slice())),
        Flags {
            map_line,
            decimal_extinf,
            byterange_tag,
            independent_segments,
            media_sequence_seen,
            endlist_line,
        },
    );
    if c.report.playlist_type.as_deref() == Some("VOD") {
        if !c.report.ended {
            c.fail(
                "4.3.3.5 a VOD playlist ends with EXT-X-ENDLIST",
                0,
                "EXT-X-PLAYLIST-TYPE:VOD without EXT-X-ENDLIST",
            );
        }
        let parts = finished.iter().any(|(_, s)| !s.parts.is_empty()) || open.is_some();
        if parts || c.report.hint.is_some() {
            c.fail(
                "4.3.3.5 a VOD playlist never changes",
                0,
                "EXT-X-PLAYLIST-TYPE:VOD with parts or a preload hint",
            );
        }
    }
    c.report.segments = finished.into_iter().map(|(_, s)| s).collect();
    c.report.open = open;
    c.report
}

struct Flags {
    map_line: usize,
    decimal_extinf: bool,
    byterange_tag: bool,
    independent_segments: bool,
    media_sequence_seen: bool,
    endlist_line: usize,
}

fn rules(
    c: &mut Checker,
    finished: &[(usize, CheckedSegment)],
    open: Option<(&CheckedSegment, &[usize])>,
    f: Flags,
) {
    let version = c.report.version.unwrap_or(1);
    let needs = [
        (f.decimal_extinf, 3, "decimal EXTINF"),
        (f.byterange_tag, 4, "EXT-X-BYTERANGE"),
        (f.map_line > 0, 6, "EXT-X-MAP in a media playlist"),
    ];
    for (used, min, what) in needs {
        if used && version < min {
            c.fail(
                "8 EXT-X-VERSION",
                0,
                format!("{what} needs version {min}, playlist says {version}"),
            );
        }
    }
    let Some(target) = c.report.target_duration else {
        c.fail("4.3.3.1 EXT-X-TARGETDURATION", 0, "missing");
        return;
    };
    if !f.media_sequence_seen && !c.report.ended {
        c.fail(
            "6.2.2 EXT-X-MEDIA-SEQUENCE",
            0,
            "a live playlist needs EXT-X-MEDIA-SEQUENCE",
        );
    }
    for (n, s) in finished {
        let d = s.duration.unwrap_or(0.0);
        if d.round() as u64 > target {
            c.fail(
                "4.3.3.1 EXTINF ≤ EXT-X-TARGETDURATION",
                *n,
                format!("{d} s rounds above {target} s"),
            );
        }
    }
    let any_parts = finished.iter().any(|(_, s)| !s.parts.is_empty()) || open.is_some();
    let pt = c.report.part_target;
    match (any_parts, pt) {
        (true, None) => c.fail("4.4.3.7 EXT-X-PART-INF", 0, "parts without EXT-X-PART-INF"),
        (false, Some(_)) => c.fail("4.4.3.7 EXT-X-PART-INF", 0, "EXT-X-PART-INF without parts"),
        _ => {}
    }
    if let Some(pt) = pt {
        if !c.report.can_block_reload {
            c.fail(
                "4.4.3.8 CAN-BLOCK-RELOAD=YES",
                0,
                "low-latency playlist without CAN-BLOCK-RELOAD=YES",
            );
        }
        match c.report.part_hold_back {
            None => c.fail(
                "4.4.3.8 PART-HOLD-BACK",
                0,
                "PART-HOLD-BACK is required with EXT-X-PART-INF",
            ),
            Some(phb) if phb + 1e-9 < 3.0 * pt => c.fail(
                "4.4.3.8 PART-HOLD-BACK ≥ 3 × PART-TARGET",
                0,
                format!("PART-HOLD-BACK {phb} s < 3 × {pt} s"),
            ),
            _ => {}
        }
    }
    // Parts of each segment.
    let segs = finished
        .iter()
        .map(|(n, s)| (s, *n, true))
        .chain(open.map(|(o, lines)| (o, lines.last().copied().unwrap_or(0), false)));
    for (s, n, is_finished) in segs {
        check_parts(c, s, n, is_finished, pt, f.independent_segments);
    }
    // Parts only for the last segments (6.2.2), counting the segment in progress.
    let mut from_end: f64 = open.map_or(0.0, |(o, _)| o.parts.iter().map(|p| p.duration).sum());
    for (n, s) in finished.iter().rev() {
        if !s.parts.is_empty() && from_end > 3.0 * target as f64 + 1e-6 {
            c.fail(
                "6.2.2 parts only within 3 target durations of the end",
                *n,
                format!(
                    "segment {} ends {from_end:.3} s before the end and still has parts",
                    s.msn
                ),
            );
        }
        from_end += s.duration.unwrap_or(0.0);
    }
    check_hint(c, finished, open.map(|(o, _)| o), f.endlist_line);
}

fn check_parts(
    c: &mut Checker,
    s: &CheckedSegment,
    line: usize,
    is_finished: bool,
    pt: Option<f64>,
    independent_segments: bool,
) {
    if s.parts.is_empty() {
        return;
    }
    let mut expected_offset = 0;
    for (i, p) in s.parts.iter().enumerate() {
        let last = i + 1 == s.parts.len();
        if p.uri != s.uri {
            c.fail(
                "4.4.4.9 parts are byte ranges of their segment",
                line,
                format!(
                    "part {i} of segment {} has URI {:?}, the segment {:?}",
                    s.msn, p.uri, s.uri
                ),
            );
        }
        match p.length {
            None => c.fail(
                "4.4.4.9 parts are byte ranges of their segment",
                line,
                format!("part {i} of segment {} has no BYTERANGE", s.msn),
            ),
            Some(len) => {
                if p.offset != expected_offset {
                    c.fail(
                        "4.4.4.9 parts contiguous from byte 0",
                        line,
                        format!(
                            "part {i} of segment {} starts at {}, expected {expected_offset}",
                            s.msn, p.offset
                        ),
                    );
                }
                if len == 0 {
                    c.fail(
                        "4.4.4.9 parts contiguous from byte 0",
                        line,
                        format!("part {i} of segment {} is empty", s.msn),
                    );
                }
                expected_offset = p.offset + len;
            }
        }
        if let Some(pt) = pt {
            if p.duration > pt + 1e-9 {
                c.fail(
                    "4.4.4.9 PART-TARGET ≥ part duration",
                    line,
                    format!(
                        "part {i} of segment {} lasts {} s > PART-TARGET {pt} s",
                        s.msn, p.duration
                    ),
                );
            }
            // The last part of the segment in progress may turn out to be its final one.
            let exempt = p.independent || last;
            if !exempt && p.duration + 1e-9 < 0.85 * pt {
                c.fail(
                    "4.4.4.9 part ≥ 85 % of PART-TARGET",
                    line,
                    format!(
                        "part {i} of segment {} lasts {} s < 85 % of {pt} s",
                        s.msn, p.duration
                    ),
                );
            }
        }
    }
    if independent_segments && !s.parts[0].independent {
        c.fail(
            "4.4.2.1 independent segments start with an independent part",
            line,
            format!(
                "segment {} begins with a part without INDEPENDENT=YES",
                s.msn
            ),
        );
    }
    if let (true, Some(d)) = (is_finished, s.duration) {
        let sum: f64 = s.parts.iter().map(|p| p.duration).sum();
        // Durations are written to the millisecond: allow that much per part.
        let slack = 0.001 * (s.parts.len() as f64 + 1.0);
        if (sum - d).abs() > slack {
            c.fail(
                "4.4.4.9 parts sum to their segment",
                line,
                format!("segment {}: parts last {sum:.3} s, EXTINF {d:.3} s", s.msn),
            );
        }
    }
}

fn check_hint(
    c: &mut Checker,
    finished: &[(usize, CheckedSegment)],
    open: Option<&CheckedSegment>,
    endlist_line: usize,
) {
    let Some(h) = c.report.hint.clone() else {
        return;
    };
    if endlist_line > 0 {
        c.fail(
            "4.4.5.3 no PRELOAD-HINT after the end",
            endlist_line,
            "EXT-X-PRELOAD-HINT with EXT-X-ENDLIST",
        );
        return;
    }
    match (open, finished.last()) {
        (Some(o), _) => {
            let end = o.parts.last().and_then(|p| p.length.map(|l| p.offset + l));
            if h.uri != o.uri || Some(h.start) != end {
                c.fail(
                    "4.4.5.3 the hint follows the last part",
                    0,
                    format!(
                        "hint {:?}@{} but the segment in progress {:?} ends at {end:?}",
                        h.uri, h.start, o.uri
                    ),
                );
            }
        }
        (None, Some((_, last))) => {
            if h.uri == last.uri || h.start != 0 {
                c.fail(
                    "4.4.5.3 the hint follows the last part",
                    0,
                    format!("hint {:?}@{} after the finished segment {:?}: expected the next segment from 0", h.uri, h.start, last.uri),
                );
            }
        }
        (None, None) => c.fail(
            "4.4.5.3 the hint follows the last part",
            0,
            "a hint in a playlist with no segment",
        ),
    }
}

/// Checks a master playlist (4.4.6.2): its variants and audio groups.
pub fn check_master(text: &str) -> Vec<Violation> {
    let mut c = Checker {
        report: MediaReport::default(),
    };
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end()));
    if lines.next().map(|(_, l)| l) != Some("#EXTM3U") {
        c.fail("4.3.1.1 #EXTM3U first", 1, "the first line is not #EXTM3U");
    }
    let mut groups: HashMap<String, usize> = HashMap::new();
    let mut wanted: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<usize> = None;
    let mut variants = 0;
    for (n, line) in lines {
        if line.is_empty() {
            continue;
        }
        if !line.starts_with('#') {
            if pending.take().is_none() {
                c.fail(
                    "4.4.6.2 EXT-X-STREAM-INF before each URI",
                    n,
                    format!("URI {line:?} without EXT-X-STREAM-INF"),
                );
            }
            continue;
        }
        let (tag, value) = line.split_once(':').unwrap_or((line, ""));
        match tag {
            "#EXT-X-MEDIA" => {
                let Some(a) = attributes(value) else {
                    c.fail("4.4.6.1 EXT-X-MEDIA", n, "malformed attribute list");
                    continue;
                };
                for k in ["TYPE", "GROUP-ID", "NAME"] {
                    if attr(&a, k).is_none() {
                        c.fail("4.4.6.1 EXT-X-MEDIA", n, format!("no {k}"));
                    }
                }
                if attr(&a, "TYPE") == Some("AUDIO") {
                    if let Some(g) = attr(&a, "GROUP-ID") {
                        *groups.entry(g.to_owned()).or_default() += 1;
                    }
                }
            }
            "#EXT-X-STREAM-INF" => {
                variants += 1;
                if pending.replace(n).is_some() {
                    c.fail(
                        "4.4.6.2 EXT-X-STREAM-INF before each URI",
                        n,
                        "two EXT-X-STREAM-INF without a URI between them",
                    );
                }
                let Some(a) = attributes(value) else {
                    c.fail("4.4.6.2 EXT-X-STREAM-INF", n, "malformed attribute list");
                    continue;
                };
                if attr(&a, "BANDWIDTH")
                    .and_then(decimal)
                    .is_none_or(|b| b == 0)
                {
                    c.fail("4.4.6.2 BANDWIDTH", n, "missing or not a positive integer");
                }
                let codecs = attr(&a, "CODECS").unwrap_or("");
                if codecs.is_empty() {
                    c.fail("4.4.6.2 CODECS", n, "missing");
                }
                let video = codecs.split(',').any(|c| {
                    c.starts_with("avc")
                        || c.starts_with("hvc")
                        || c.starts_with("hev")
                        || c.starts_with("av01")
                });
                let resolution = attr(&a, "RESOLUTION")
                    .and_then(|r| r.split_once('x'))
                    .and_then(|(w, h)| Some((decimal(w)?, decimal(h)?)));
                if video && resolution.is_none() {
                    c.fail(
                        "4.4.6.2 RESOLUTION",
                        n,
                        "a video variant without RESOLUTION=WxH",
                    );
                }
                if let Some(g) = attr(&a, "AUDIO") {
                    wanted.push((n, g.to_owned()));
                }
            }
            _ => {}
        }
    }
    if let Some(n) = pending {
        c.fail(
            "4.4.6.2 EXT-X-STREAM-INF before each URI",
            n,
            "EXT-X-STREAM-INF without its URI",
        );
    }
    if variants == 0 {
        c.fail("4.4.6.2 EXT-X-STREAM-INF", 0, "no variant");
    }
    for (n, g) in wanted {
        if !groups.contains_key(&g) {
            c.fail(
                "4.4.6.2 AUDIO group",
                n,
                format!("AUDIO={g:?} has no EXT-X-MEDIA"),
            );
        }
    }
    c.report.violations
}
