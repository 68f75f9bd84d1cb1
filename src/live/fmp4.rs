//! A minimal fragmented-MP4 (ISO BMFF) writer for one video track: the init
//! segment (`ftyp` + `moov` with an empty sample table and `mvex`) and one
//! `moof` + `mdat` fragment per frame, as Media Source Extensions want them.
//!
//! Written after retina's own `examples/client/src/mp4.rs`, but fragmented
//! and much smaller: retina builds the codec-specific sample entry (`avc1`
//! with `avcC`, or `hvc1` with `hvcC`) from the stream's parameters
//! ([`retina::codec::VideoParameters::mp4_sample_entry`]), so the box layout
//! below is all there is. No crate: the `mp4` crate writes files through
//! `Seek`, pulls in more than we use, and a fragment per frame is 3 boxes.
//!
//! One frame per fragment keeps latency at one frame: a fragment is sent as
//! soon as its frame is complete. Its duration is not known yet (the next
//! frame's timestamp decides it), so the previous frame interval is used;
//! `tfdt` carries the real decode time, so an estimate never accumulates.
//!
//! [`timing_box`] is a `uuid` box StreamPulse puts in front of every
//! fragment with the box's receive time and, when the camera's RTCP sender
//! reports allow it, the camera's capture time (both Unix ms), so the page
//! can show glass-to-glass latency. Players skip `uuid` boxes they do not
//! know; the page's script strips them before feeding MSE.

/// The `uuid` of [`timing_box`]: "streampulse-time" in ASCII.
pub const TIMING_UUID: [u8; 16] = *b"streampulse-time";

/// Flag in [`timing_box`]: the fragment starts with a key frame.
pub const TIMING_KEY: u8 = 1;

/// Appends a box: 32-bit size, type, then whatever `body` writes.
fn bx(out: &mut Vec<u8>, typ: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(typ);
    body(out);
    let len = u32::try_from(out.len() - start).expect("an MP4 box should fit in 4 GiB");
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// Appends a full box (version and 24-bit flags after the type).
fn full(
    out: &mut Vec<u8>,
    typ: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>),
) {
    bx(out, typ, |o| {
        o.push(version);
        o.extend_from_slice(&flags.to_be_bytes()[1..]);
        body(o);
    });
}

fn u16be(o: &mut Vec<u8>, v: u16) {
    o.extend_from_slice(&v.to_be_bytes());
}
fn u32be(o: &mut Vec<u8>, v: u32) {
    o.extend_from_slice(&v.to_be_bytes());
}
fn u64be(o: &mut Vec<u8>, v: u64) {
    o.extend_from_slice(&v.to_be_bytes());
}

/// The unity matrix of `mvhd` and `tkhd`.
fn matrix(o: &mut Vec<u8>) {
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        u32be(o, v);
    }
}

/// The init segment: `ftyp` + `moov` for one video track (track 1) whose
/// samples are described by `sample_entry` (a complete `avc1`/`hvc1` box),
/// `width`×`height` pixels, timestamps in units of `timescale` per second.
pub fn init_segment(sample_entry: &[u8], width: u32, height: u32, timescale: u32) -> Vec<u8> {
    let mut o = Vec::with_capacity(700 + sample_entry.len());
    bx(&mut o, b"ftyp", |o| {
        o.extend_from_slice(b"isom");
        u32be(o, 0x200);
        for brand in [b"isom", b"iso5", b"iso6", b"mp41"] {
            o.extend_from_slice(brand);
        }
    });
    bx(&mut o, b"moov", |o| {
        full(o, b"mvhd", 0, 0, |o| {
            u32be(o, 0); // creation_time
            u32be(o, 0); // modification_time
            u32be(o, 1000); // timescale
            u32be(o, 0); // duration: unknown (live)
            u32be(o, 0x0001_0000); // rate 1.0
            u16be(o, 0x0100); // volume 1.0
            o.extend_from_slice(&[0; 10]); // reserved
            matrix(o);
            o.extend_from_slice(&[0; 24]); // pre_defined
            u32be(o, 2); // next_track_ID
        });
        bx(o, b"trak", |o| {
            // Flags: enabled, in movie.
            full(o, b"tkhd", 0, 3, |o| {
                u32be(o, 0);
                u32be(o, 0);
                u32be(o, 1); // track_ID
                u32be(o, 0); // reserved
                u32be(o, 0); // duration
                o.extend_from_slice(&[0; 8]); // reserved
                u16be(o, 0); // layer
                u16be(o, 0); // alternate_group
                u16be(o, 0); // volume (video)
                u16be(o, 0); // reserved
                matrix(o);
                u32be(o, width << 16);
                u32be(o, height << 16);
            });
            bx(o, b"mdia", |o| {
                full(o, b"mdhd", 0, 0, |o| {
                    u32be(o, 0);
                    u32be(o, 0);
                    u32be(o, timescale);
                    u32be(o, 0);
                    u16be(o, 0x55c4); // language "und"
                    u16be(o, 0);
                });
                full(o, b"hdlr", 0, 0, |o| {
                    u32be(o, 0); // pre_defined
                    o.extend_from_slice(b"vide");
                    o.extend_from_slice(&[0; 12]);
                    o.extend_from_slice(b"StreamPulse live\0");
                });
                bx(o, b"minf", |o| {
                    full(o, b"vmhd", 0, 1, |o| o.extend_from_slice(&[0; 8]));
                    bx(o, b"dinf", |o| {
                        full(o, b"dref", 0, 0, |o| {
                            u32be(o, 1);
                            // Flag 1: the media is in this file.
                            full(o, b"url ", 0, 1, |_| {});
                        });
                    });
                    bx(o, b"stbl", |o| {
                        full(o, b"stsd", 0, 0, |o| {
                            u32be(o, 1);
                            o.extend_from_slice(sample_entry);
                        });
                        full(o, b"stts", 0, 0, |o| u32be(o, 0));
                        full(o, b"stsc", 0, 0, |o| u32be(o, 0));
                        full(o, b"stsz", 0, 0, |o| {
                            u32be(o, 0);
                            u32be(o, 0);
                        });
                        full(o, b"stco", 0, 0, |o| u32be(o, 0));
                    });
                });
            });
        });
        bx(o, b"mvex", |o| {
            full(o, b"trex", 0, 0, |o| {
                u32be(o, 1); // track_ID
                u32be(o, 1); // default_sample_description_index
                u32be(o, 0);
                u32be(o, 0);
                u32be(o, 0);
            });
        });
    });
    o
}

/// `sample_flags` of a key frame: depends on no other sample.
const SYNC: u32 = 0x0200_0000;
/// `sample_flags` of other frames: depends on others, not a sync sample.
const NON_SYNC: u32 = 0x0101_0000;

/// Appends one fragment (`moof` + `mdat`) holding one sample: `data` (the
/// frame in MP4 form, i.e. length-prefixed NAL units) decoded at
/// `decode_time` and lasting `duration` (both in the init segment's timescale).
pub fn fragment(
    out: &mut Vec<u8>,
    sequence: u32,
    decode_time: u64,
    duration: u32,
    key: bool,
    data: &[u8],
) {
    let moof_start = out.len();
    let mut data_offset_at = 0;
    bx(out, b"moof", |o| {
        full(o, b"mfhd", 0, 0, |o| u32be(o, sequence));
        bx(o, b"traf", |o| {
            // 0x020000: default-base-is-moof (offsets count from the moof).
            full(o, b"tfhd", 0, 0x02_0000, |o| u32be(o, 1));
            full(o, b"tfdt", 1, 0, |o| u64be(o, decode_time));
            // data-offset, sample-duration, sample-size, sample-flags present.
            full(o, b"trun", 0, 0x0000_0701, |o| {
                u32be(o, 1); // sample_count
                data_offset_at = o.len();
                u32be(o, 0); // data_offset, patched below
                u32be(o, duration);
                u32be(o, u32::try_from(data.len()).unwrap_or(u32::MAX));
                u32be(o, if key { SYNC } else { NON_SYNC });
            });
        });
    });
    // The sample starts right after the mdat header.
    let offset = (out.len() - moof_start + 8) as u32;
    out[data_offset_at..data_offset_at + 4].copy_from_slice(&offset.to_be_bytes());
    bx(out, b"mdat", |o| o.extend_from_slice(data));
}

/// Appends the `uuid` timing box (see the module docs): flags ([`TIMING_KEY`]),
/// then the box's receive time and the camera's capture time (`NaN` when
/// unknown) as big-endian f64 Unix milliseconds, then the fragment's decode
/// time and the timescale.
pub fn timing_box(
    out: &mut Vec<u8>,
    key: bool,
    recv_ms: f64,
    capture_ms: Option<f64>,
    decode_time: u64,
    timescale: u32,
) {
    bx(out, b"uuid", |o| {
        o.extend_from_slice(&TIMING_UUID);
        o.push(if key { TIMING_KEY } else { 0 });
        o.extend_from_slice(&[0, 0, 0]);
        o.extend_from_slice(&recv_ms.to_be_bytes());
        o.extend_from_slice(&capture_ms.unwrap_or(f64::NAN).to_be_bytes());
        u64be(o, decode_time);
        u32be(o, timescale);
    });
}

/// An 8-byte `free` box: a keep-alive that every MP4 reader skips.
pub const FREE_BOX: [u8; 8] = [0, 0, 0, 8, b'f', b'r', b'e', b'e'];

/// H.264 frame in MP4 form (4-byte lengths) → Annex B with SPS and PPS in
/// front, as the on-box key-frame decoder ([`crate::preview`]) wants it.
/// Returns None if the lengths do not add up.
pub fn avcc_to_annexb(sps: &[u8], pps: &[u8], avcc: &[u8]) -> Option<Vec<u8>> {
    const START: [u8; 4] = [0, 0, 0, 1];
    let mut out = Vec::with_capacity(avcc.len() + sps.len() + pps.len() + 16);
    for ps in [sps, pps] {
        out.extend_from_slice(&START);
        out.extend_from_slice(ps);
    }
    let mut rest = avcc;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return None;
        }
        let n = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let nal = rest.get(4..4 + n)?;
        out.extend_from_slice(&START);
        out.extend_from_slice(nal);
        rest = &rest[4 + n..];
    }
    Some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A parsed box: type, payload range in the buffer.
    #[derive(Debug)]
    pub(crate) struct Box_ {
        pub typ: [u8; 4],
        pub start: usize,
        pub end: usize,
    }

    /// Top-level boxes of `buf` (panics if sizes do not tile it exactly).
    pub(crate) fn boxes(buf: &[u8], from: usize, to: usize) -> Vec<Box_> {
        let mut v = Vec::new();
        let mut i = from;
        while i < to {
            let len = u32::from_be_bytes(buf[i..i + 4].try_into().unwrap()) as usize;
            assert!(len >= 8 && i + len <= to, "bad box size {len} at {i}");
            let typ: [u8; 4] = buf[i + 4..i + 8].try_into().unwrap();
            v.push(Box_ {
                typ,
                start: i + 8,
                end: i + len,
            });
            i += len;
        }
        assert_eq!(i, to, "boxes must tile the range exactly");
        v
    }

    fn find<'a>(v: &'a [Box_], typ: &[u8; 4]) -> &'a Box_ {
        v.iter()
            .find(|b| &b.typ == typ)
            .unwrap_or_else(|| panic!("no {}", String::from_utf8_lossy(typ)))
    }

    #[test]
    fn init_segment_nests_correctly() {
        let entry = {
            let mut e = Vec::new();
            bx(&mut e, b"avc1", |o| o.extend_from_slice(&[7; 20]));
            e
        };
        let init = init_segment(&entry, 320, 240, 90_000);
        let top = boxes(&init, 0, init.len());
        assert_eq!(top.len(), 2);
        assert_eq!(&top[0].typ, b"ftyp");
        let moov = find(&top, b"moov");
        let inner = boxes(&init, moov.start, moov.end);
        let kinds: Vec<_> = inner.iter().map(|b| b.typ).collect();
        assert_eq!(kinds, [*b"mvhd", *b"trak", *b"mvex"]);
        let trak = boxes(&init, inner[1].start, inner[1].end);
        let tkhd = find(&trak, b"tkhd");
        // width/height are the last 8 bytes of tkhd, 16.16 fixed point.
        assert_eq!(
            &init[tkhd.end - 8..tkhd.end],
            &[0x01, 0x40, 0, 0, 0, 0xF0, 0, 0]
        );
        let mdia = find(&trak, b"mdia");
        let mdia_in = boxes(&init, mdia.start, mdia.end);
        let mdhd = find(&mdia_in, b"mdhd");
        assert_eq!(
            u32::from_be_bytes(init[mdhd.start + 12..mdhd.start + 16].try_into().unwrap()),
            90_000
        );
        let minf = find(&mdia_in, b"minf");
        let stbl = find(&boxes(&init, minf.start, minf.end), b"stbl").start;
        // The sample entry sits verbatim inside stsd.
        let at = init.windows(entry.len()).position(|w| w == entry).unwrap();
        assert!(at > stbl);
    }

    #[test]
    fn fragment_offsets_point_at_the_sample() {
        let mut out = vec![0xAA; 5]; // something already in the buffer
        let data = [0, 0, 0, 2, 0x65, 0x88];
        fragment(&mut out, 7, 123_456_789_012, 6000, true, &data);
        let top = boxes(&out, 5, out.len());
        assert_eq!(top.len(), 2);
        let (moof, mdat) = (&top[0], &top[1]);
        assert_eq!(&out[mdat.start..mdat.end], &data);
        let moof_in = boxes(&out, moof.start, moof.end);
        let traf = find(&moof_in, b"traf");
        let inner = boxes(&out, traf.start, traf.end);
        let tfdt = find(&inner, b"tfdt");
        assert_eq!(out[tfdt.start], 1, "tfdt version 1 (64-bit time)");
        assert_eq!(
            u64::from_be_bytes(out[tfdt.start + 4..tfdt.start + 12].try_into().unwrap()),
            123_456_789_012
        );
        let trun = find(&inner, b"trun");
        let t = &out[trun.start..trun.end];
        let offset = u32::from_be_bytes(t[8..12].try_into().unwrap()) as usize;
        // Offsets count from the start of the moof box (its size field).
        assert_eq!(moof.start - 8 + offset, mdat.start);
        assert_eq!(u32::from_be_bytes(t[12..16].try_into().unwrap()), 6000);
        assert_eq!(u32::from_be_bytes(t[16..20].try_into().unwrap()), 6);
        assert_eq!(u32::from_be_bytes(t[20..24].try_into().unwrap()), SYNC);

        let mut p = Vec::new();
        fragment(&mut p, 8, 0, 6000, false, &data);
        let trun_flags = p.windows(4).position(|w| w == b"trun").unwrap() + 4 + 4 + 16;
        assert_eq!(
            u32::from_be_bytes(p[trun_flags..trun_flags + 4].try_into().unwrap()),
            NON_SYNC
        );
    }

    #[test]
    fn timing_box_layout() {
        let mut out = Vec::new();
        timing_box(&mut out, true, 1.5e12, None, 42, 90_000);
        let top = boxes(&out, 0, out.len());
        assert_eq!(&top[0].typ, b"uuid");
        assert_eq!(out.len(), 8 + 16 + 4 + 8 + 8 + 8 + 4);
        assert_eq!(&out[8..24], &TIMING_UUID);
        assert_eq!(out[24], TIMING_KEY);
        assert_eq!(f64::from_be_bytes(out[28..36].try_into().unwrap()), 1.5e12);
        assert!(f64::from_be_bytes(out[36..44].try_into().unwrap()).is_nan());
        assert_eq!(u64::from_be_bytes(out[44..52].try_into().unwrap()), 42);
        assert_eq!(boxes(&FREE_BOX, 0, 8)[0].typ, *b"free");
    }

    #[test]
    fn annexb_conversion() {
        let avcc = [0, 0, 0, 2, 0x65, 1, 0, 0, 0, 1, 0x41];
        let out = avcc_to_annexb(&[0x67, 9], &[0x68, 8], &avcc).unwrap();
        assert_eq!(
            out,
            [0, 0, 0, 1, 0x67, 9, 0, 0, 0, 1, 0x68, 8, 0, 0, 0, 1, 0x65, 1, 0, 0, 0, 1, 0x41]
        );
        assert_eq!(avcc_to_annexb(&[], &[], &[0, 0, 0, 9, 1]), None);
        assert_eq!(avcc_to_annexb(&[], &[], &[0, 0]), None);
    }
}
