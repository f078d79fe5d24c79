//! DVR (time-shift) windows at the origin: ffmpeg publishes to the real
//! origin (profiles of `dvr-profiles.toml`: 60 s windows, LL-HLS and plain)
//! for a little over the window; the media playlists then list at least the
//! window, the segments they list are on disk, the ones that left it are
//! deleted after the grace, and delta updates (`_HLS_skip=YES`) skip the
//! old part, in the low-latency and the plain playlist alike.

use reqwest::Client;
use std::path::Path;
use std::time::Duration;
use testkit::stack::{H264, Stack, ffmpeg_publish};
use testkit::wait_until_async;

async fn get(client: &Client, url: &str) -> (u16, String) {
    let r = client.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

fn listed(playlist: &str) -> f64 {
    playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|l| l.trim_end_matches(',').parse::<f64>().unwrap())
        .sum()
}

fn tag<'a>(playlist: &'a str, prefix: &str) -> Option<&'a str> {
    playlist.lines().find_map(|l| l.strip_prefix(prefix))
}

fn uris(playlist: &str) -> Vec<&str> {
    playlist
        .lines()
        .filter(|l| l.ends_with(".m4s") && !l.starts_with('#'))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dvr_window_is_listed_kept_on_disk_and_skipped_by_delta_updates() {
    let mut stack = Stack::new();
    let profiles = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dvr-profiles.toml");
    let origin = stack.add_origin_profiles("origin-dvr", &profiles, &["--segment-grace", "2s"]);
    let (rtmp, http) = (origin.rtmp, origin.http);
    let client = Client::new();
    let mut publishers = vec![];
    for (name, profile) in [("dvrll", "dvr"), ("dvrplain", "dvr-plain")] {
        let key = stack.create_stream_with(name, Some(profile));
        publishers.push(ffmpeg_publish(&format!("rtmp://{rtmp}/live/{key}"), "flv", 85, H264));
    }
    for name in ["dvrll", "dvrplain"] {
        let base = format!("http://{http}/{name}");
        let master = wait_until_async("the multivariant playlist", Duration::from_secs(30), || async {
            let (s, t) = get(&client, &format!("{base}/index.m3u8")).await;
            (s == 200).then_some(t)
        })
        .await;
        let media_uri = master.lines().find(|l| l.ends_with("source/index.m3u8")).unwrap();
        let media = format!("{base}/{media_uri}");
        let dir = media.trim_end_matches("index.m3u8").to_string();
        // The window fills: 60 s of media listed, and then it slides.
        let playlist = wait_until_async("a full window that slides", Duration::from_secs(80), || async {
            let (_, t) = get(&client, &media).await;
            let sequence: u64 = tag(&t, "#EXT-X-MEDIA-SEQUENCE:")?.parse().ok()?;
            (listed(&t) >= 60.0 && sequence > 0).then_some(t)
        })
        .await;
        let target: f64 = tag(&playlist, "#EXT-X-TARGETDURATION:").unwrap().parse().unwrap();
        let secs = listed(&playlist);
        assert!(
            (60.0..60.0 + target + 0.01).contains(&secs),
            "{name}: {secs} s listed\n{playlist}"
        );
        // Parts only near the live end.
        let parts = playlist.matches("#EXT-X-PART:").count();
        if name == "dvrll" {
            assert!(parts > 0 && parts < 6 * 5 * target as usize, "{name}: {parts} parts");
        } else {
            assert_eq!(parts, 0, "{playlist}");
        }
        // Every listed segment is on disk, the oldest included; the one
        // before it left the window and is deleted after the 2 s grace.
        let listed_uris = uris(&playlist);
        let (s, _) = get(&client, &format!("{dir}{}", listed_uris[0])).await;
        assert_eq!(s, 200, "{name}: the oldest listed segment");
        let sequence: u64 = tag(&playlist, "#EXT-X-MEDIA-SEQUENCE:").unwrap().parse().unwrap();
        let gone = format!("{dir}{}.m4s", sequence - 1);
        wait_until_async(
            "a segment out of the window deleted",
            Duration::from_secs(10),
            || async { (get(&client, &gone).await.0 == 404).then_some(()) },
        )
        .await;

        // Delta updates: the server offers them, and the delta lists only
        // what lies within CAN-SKIP-UNTIL of the end.
        let control = tag(&playlist, "#EXT-X-SERVER-CONTROL:").expect("server control");
        let skip_until: f64 = control
            .split(',')
            .find_map(|kv| kv.strip_prefix("CAN-SKIP-UNTIL="))
            .unwrap()
            .parse()
            .unwrap();
        assert!(skip_until >= 6.0 * target, "{control}");
        let (s, delta) = get(&client, &format!("{media}?_HLS_skip=YES")).await;
        assert_eq!(s, 200);
        let skipped: usize = tag(&delta, "#EXT-X-SKIP:SKIPPED-SEGMENTS=")
            .unwrap_or_else(|| panic!("{name}: no skip in\n{delta}"))
            .parse()
            .unwrap();
        assert!(delta.contains("#EXT-X-VERSION:9\n"), "{delta}");
        let kept = listed(&delta);
        assert!(
            kept >= skip_until - target && kept <= skip_until + 2.0 * target,
            "{name}: the delta keeps {kept} s"
        );
        let full_now = get(&client, &media).await.1;
        let total = uris(&full_now).len();
        assert!(
            (total as i64 - (skipped + uris(&delta).len()) as i64).abs() <= 1,
            "{name}: {skipped} skipped + {} listed vs {total}",
            uris(&delta).len()
        );
        assert!(
            delta.len() * 3 < full_now.len() * 2,
            "{name}: a delta of {} bytes against {}",
            delta.len(),
            full_now.len()
        );
    }
    drop(publishers);
}
