//! A fixed board for the report's tests (and any reader's: MQTT, web), so
//! the pinned JSON in `testdata/` has one source.

/// A fixed board covering every shape a stream's entry takes: up after a
/// failure (stages, media, a non-round f32 fps), down with an unsynced
/// clock and a message that needs escaping, no data yet, disabled, a
/// width without a height, and a time out of range (formats as "").
pub fn board() -> std::collections::BTreeMap<String, crate::state::StreamState> {
    use crate::probe::{Failure, Kind, MediaFacts, Outcome, Reason, Stages};
    use crate::state::StreamState;
    const T0: i64 = 1_700_000_000_000;
    let fail = |reason, msg: &str, latency_ms| Outcome {
        result: Err(Failure::new(reason, msg)),
        latency_ms,
        stages: Stages {
            dns_ms: Some(1),
            connect_ms: None,
            ..Stages::default()
        },
        media: MediaFacts::default(),
    };
    let mut b = std::collections::BTreeMap::new();

    let mut up = StreamState::new(
        "Lobby Cam",
        Kind::Rtsp,
        "rtsp://admin:***@127.0.0.1:8554/h264",
        true,
        2,
        1,
    );
    up.apply(
        T0,
        &fail(Reason::Timeout, "no frame within 10 s", 10_000),
        false,
    );
    up.apply(
        T0 + 5_000,
        &Outcome {
            result: Ok(()),
            latency_ms: 187,
            stages: Stages {
                dns_ms: Some(0),
                connect_ms: Some(2),
                describe_ms: Some(31),
                setup_ms: Some(4),
                play_ms: Some(5),
                first_frame_ms: Some(145),
            },
            media: MediaFacts {
                codec: Some("h264".into()),
                rfc6381: Some("avc1.64001F".into()),
                width: Some(1920),
                height: Some(1080),
                fps: Some(29.97),
                transport: Some("tcp".into()),
                frame_bytes: Some(41_234),
                keyframe_interval_ms: Some(2002),
                keyframe_interval_over: false,
                bitrate_kbps: Some(4096),
                camera_clock_offset_ms: Some(-7_261_500),
            },
        },
        false,
    );
    up.picture = crate::picture::PictureState {
        verdict: crate::picture::PictureVerdict::Black,
        detail: "the picture is black (mean luma 16, contrast 0.4)".into(),
        checked_ms: Some(T0 + 5_000),
        mean_luma: Some(16.2),
        contrast: Some(0.4),
        camera_clock: crate::picture::ClockVerdict::Off,
        camera_clock_offset_ms: Some(-7_261_500),
    };
    b.insert(up.name.clone(), up);

    let mut down = StreamState::new(
        "Dead Cam",
        Kind::Mjpeg,
        "http://127.0.0.1:9/video",
        true,
        1,
        1,
    );
    down.apply(
        T0 + 7_000,
        &fail(
            Reason::Connect,
            "connection refused: \"é\" \\ \n\t<&>\u{1}",
            3,
        ),
        true,
    );
    b.insert(down.name.clone(), down);

    let new = StreamState::new(
        "new-cam",
        Kind::Snapshot,
        "http://127.0.0.1:9/snap.jpg",
        true,
        3,
        2,
    );
    b.insert(new.name.clone(), new);

    let off = StreamState::new("off cam", Kind::Rtsp, "rtsp://127.0.0.1:9/x", false, 3, 2);
    b.insert(off.name.clone(), off);

    let mut odd = StreamState::new(
        "odd",
        Kind::Snapshot,
        "http://127.0.0.1:9/a.jpg",
        true,
        3,
        1,
    );
    odd.apply(
        i64::MAX,
        &Outcome {
            result: Ok(()),
            latency_ms: 0,
            stages: Stages::default(),
            media: MediaFacts {
                codec: Some("jpeg".into()),
                width: Some(640),
                fps: Some(25.0),
                ..MediaFacts::default()
            },
        },
        false,
    );
    b.insert(odd.name.clone(), odd);
    b
}
