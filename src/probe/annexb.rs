//! H.264 Annex B byte stream → access units (one picture each), for the
//! box's own camera: a capture command (`rpicam-vid`, ffmpeg) writes a
//! plain Annex B stream to its standard output, with no container and no
//! timestamps, so the pictures have to be found in the bytes.
//!
//! NAL units end at the next start code (`00 00 01`, or `00 00 00 01`), so a
//! unit is complete only when the next one begins, and a picture only when
//! the header of the next one's first unit arrives: one frame of latency,
//! which the live view and the probe can afford. A new access unit starts at an AUD,
//! SEI, SPS or PPS after the current unit's slices, or at a slice whose
//! `first_mb_in_slice` is 0 (H.264 7.4.1.2.3; encoders that write no AUD,
//! like x264 and the Pi's encoder, are covered by the second rule).
//!
//! Not here: parsing the SPS (retina's depacketizer does that, see
//! `local.rs`), H.265 (a capture command is asked for H.264).

/// NAL unit types (H.264 table 7-1) this module cares about.
pub const NAL_SLICE: u8 = 1;
pub const NAL_IDR: u8 = 5;
pub const NAL_SEI: u8 = 6;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
pub const NAL_AUD: u8 = 9;

/// The type of a NAL unit (without its start code).
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |b| b & 0x1f)
}

/// One picture's NAL units, without start codes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessUnit {
    pub nals: Vec<Vec<u8>>,
}

impl AccessUnit {
    /// True if it holds an IDR slice: a decoder can start here.
    pub fn is_idr(&self) -> bool {
        self.nals.iter().any(|n| nal_type(n) == NAL_IDR)
    }

    fn has_slice(&self) -> bool {
        self.nals
            .iter()
            .any(|n| matches!(nal_type(n), NAL_SLICE | NAL_IDR))
    }

    /// Bytes of NAL payload.
    pub fn len_bytes(&self) -> usize {
        self.nals.iter().map(Vec::len).sum()
    }

    /// The picture in Annex B with `sps` and `pps` in front when it does not
    /// carry its own (a camera that sends them once, at the start): what the
    /// picture checks' decoder and `probe::Frame` want.
    pub fn to_annexb(&self, sps: &[u8], pps: &[u8]) -> Vec<u8> {
        let own = |t| self.nals.iter().any(|n| nal_type(n) == t);
        let mut out = Vec::with_capacity(self.len_bytes() + sps.len() + pps.len() + 32);
        if !own(NAL_SPS) && !sps.is_empty() {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(sps);
        }
        if !own(NAL_PPS) && !pps.is_empty() {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(pps);
        }
        for n in &self.nals {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(n);
        }
        out
    }

    /// The picture in MP4 form (4-byte big-endian lengths), without the
    /// parameter sets and AUDs (they belong in `avcC`): an fMP4 sample.
    pub fn to_mp4_sample(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len_bytes() + 4 * self.nals.len());
        for n in self
            .nals
            .iter()
            .filter(|n| !matches!(nal_type(n), NAL_SPS | NAL_PPS | NAL_AUD))
        {
            let len = u32::try_from(n.len()).expect("a NAL unit is capped far below 4 GiB");
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(n);
        }
        out
    }
}

/// Splits a byte stream into access units; keeps the last SPS and PPS seen.
#[derive(Debug)]
pub struct Splitter {
    /// Bytes not yet split (from the last start code on).
    buf: Vec<u8>,
    /// Where the next start-code search in `buf` resumes.
    scan_from: usize,
    current: AccessUnit,
    /// The unit in front has had its header looked at ([`Splitter::open`]).
    opened: bool,
    max_bytes: usize,
    /// The last parameter sets, for pictures that come without them.
    pub sps: Option<Vec<u8>>,
    pub pps: Option<Vec<u8>>,
}

impl Splitter {
    /// `max_bytes` caps a NAL unit and an access unit (the probe's byte cap).
    pub fn new(max_bytes: usize) -> Splitter {
        Splitter {
            buf: Vec::new(),
            scan_from: 0,
            current: AccessUnit::default(),
            opened: false,
            max_bytes,
            sps: None,
            pps: None,
        }
    }

    /// Adds `data`; appends the access units it completed to `out`.
    ///
    /// # Errors
    /// A NAL unit or picture larger than the cap (the message says which).
    pub fn push(&mut self, data: &[u8], out: &mut Vec<AccessUnit>) -> Result<(), String> {
        self.buf.extend_from_slice(data);
        loop {
            // The unit in front starts after the first start code in `buf`.
            let Some((first, first_len)) = find_start(&self.buf, 0) else {
                // No start code at all yet: keep only a possible partial one.
                let keep = self.buf.len().min(3);
                self.buf.drain(..self.buf.len() - keep);
                self.scan_from = 0;
                return Ok(());
            };
            let body = first + first_len;
            // A picture ends where the next one's first unit starts: decide
            // as soon as that unit's header is here, not when it is complete.
            if !self.opened && self.buf.len() >= body + 2 {
                self.open(self.buf[body], self.buf[body + 1], out);
            }
            let from = self.scan_from.max(body);
            match find_start(&self.buf, from) {
                Some((next, _)) => {
                    // A 4-byte start code's leading zero is not the unit's.
                    let nal = self.buf[body..next].to_vec();
                    self.buf.drain(..next);
                    self.scan_from = 0;
                    self.nal(nal, out)?;
                }
                None => {
                    if self.buf.len() - body > self.max_bytes {
                        return Err(format!(
                            "a NAL unit of more than {} bytes without an end",
                            self.max_bytes
                        ));
                    }
                    // Resume a little before the end: a start code may straddle reads.
                    self.scan_from = self.buf.len().saturating_sub(3).max(body);
                    return Ok(());
                }
            }
        }
    }

    /// A unit starts whose first two bytes are `b0`, `b1`: if it begins a
    /// new picture, the current one is complete.
    fn open(&mut self, b0: u8, b1: u8, out: &mut Vec<AccessUnit>) {
        self.opened = true;
        let starts_new = match b0 & 0x1f {
            NAL_AUD | NAL_SEI | NAL_SPS | NAL_PPS => self.current.has_slice(),
            // first_mb_in_slice is ue(v): 0 is the single bit `1`.
            NAL_SLICE | NAL_IDR => self.current.has_slice() && b1 & 0x80 != 0,
            _ => false,
        };
        if starts_new {
            out.push(std::mem::take(&mut self.current));
        }
    }

    fn nal(&mut self, mut nal: Vec<u8>, out: &mut Vec<AccessUnit>) -> Result<(), String> {
        // Trailing zero bytes belong to the next start code (or are padding).
        while nal.last() == Some(&0) {
            nal.pop();
        }
        if !self.opened && !nal.is_empty() {
            self.open(nal[0], nal.get(1).copied().unwrap_or(0), out);
        }
        self.opened = false;
        if nal.is_empty() {
            return Ok(());
        }
        match nal_type(&nal) {
            NAL_SPS => self.sps = Some(nal.clone()),
            NAL_PPS => self.pps = Some(nal.clone()),
            _ => {}
        }
        self.current.nals.push(nal);
        if self.current.len_bytes() > self.max_bytes {
            return Err(format!(
                "a picture of more than {} bytes (the byte cap)",
                self.max_bytes
            ));
        }
        Ok(())
    }
}

/// The first start code at or after `from`: its position and length (3 or 4).
fn find_start(buf: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 3 <= buf.len() {
        if buf[i + 2] > 1 {
            i += 3;
            continue;
        }
        if buf[i] == 0 && buf[i + 1] == 0 && buf[i + 2] == 1 {
            return Some(if i > from && buf[i - 1] == 0 {
                (i - 1, 4)
            } else {
                (i, 3)
            });
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPS, PPS, IDR (two slices), P, P as an encoder writes them.
    fn stream() -> Vec<u8> {
        let mut s = Vec::new();
        for nal in [
            &[0x67, 0x42, 0, 0x1e][..],
            &[0x68, 0xce, 0x3c, 0x80],
            &[0x65, 0x88, 0x84, 0x00, 0x21],
            &[0x65, 0x08, 0x84, 0x00, 0x22],
            &[0x41, 0x9a, 0x02],
            &[0x41, 0x9a, 0x04],
        ] {
            s.extend_from_slice(&[0, 0, 0, 1]);
            s.extend_from_slice(nal);
        }
        s
    }

    fn split(chunk: usize) -> (Vec<AccessUnit>, Splitter) {
        let mut sp = Splitter::new(1 << 20);
        let mut out = Vec::new();
        for c in stream().chunks(chunk) {
            sp.push(c, &mut out).unwrap();
        }
        (out, sp)
    }

    #[test]
    fn splits_pictures_at_any_read_size() {
        for chunk in [1, 2, 3, 5, 7, 100] {
            let (aus, sp) = split(chunk);
            // The last P frame is complete only when the next picture begins.
            assert_eq!(aus.len(), 2, "chunk {chunk}: {aus:?}");
            assert_eq!(aus[0].nals.len(), 4, "SPS, PPS and both IDR slices");
            assert!(aus[0].is_idr());
            assert_eq!(aus[1].nals, vec![vec![0x41, 0x9a, 0x02]]);
            assert!(!aus[1].is_idr());
            assert_eq!(sp.sps.as_deref(), Some(&[0x67, 0x42, 0, 0x1e][..]));
        }
    }

    #[test]
    fn annexb_adds_missing_parameter_sets_and_mp4_drops_them() {
        let (aus, sp) = split(4096);
        let p = &aus[1];
        let annexb = p.to_annexb(sp.sps.as_deref().unwrap(), sp.pps.as_deref().unwrap());
        assert!(annexb.starts_with(&[0, 0, 0, 1, 0x67]), "{annexb:02x?}");
        let idr = aus[0].to_annexb(&[0x67, 9], &[0x68, 9]);
        assert_eq!(
            idr.windows(2).filter(|w| *w == [0x67, 9]).count(),
            0,
            "its own SPS is kept, no second one"
        );
        let sample = aus[0].to_mp4_sample();
        assert_eq!(&sample[..5], &[0, 0, 0, 5, 0x65], "{sample:02x?}");
    }

    #[test]
    fn caps_an_endless_unit() {
        let mut sp = Splitter::new(64);
        let mut out = Vec::new();
        sp.push(&[0, 0, 1, 0x65], &mut out).unwrap();
        let err = sp.push(&[0x55; 100], &mut out).unwrap_err();
        assert!(err.contains("64 bytes"), "{err}");
    }
}
