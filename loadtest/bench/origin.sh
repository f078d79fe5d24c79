#!/usr/bin/env bash
# Origin benchmarks, each beside a peer measured in the same run:
#
#  1. CPU seconds per media second of the default ladder (720p/480p/360p,
#     x264 veryfast, zerolatency, no B-frames, 2 s GOP, AAC 128k), beside
#     ffmpeg encoding the same ladder with the same x264 settings from the
#     same input into fMP4 HLS: as a live transcoder fed over RTMP by the
#     same publisher, and from the file.
#  2. How many default-ladder streams one origin sustains at real time:
#     1..MAX_STREAMS publishers at once; a count is sustained when every
#     stream's encoder lag stays under one segment and every rendition wrote
#     the segments real time calls for.
#  3. Time from the publisher's start to the first segment listed, beside
#     nginx-rtmp (libnginx-mod-rtmp) with the same 2 s fragments; ours with
#     the default ladder and with passthrough.
#
#   loadtest/bench/origin.sh [SECONDS] [MAX_STREAMS] [SECTIONS] [ROUNDS]
#
# SECTIONS picks benchmarks to run, e.g. "13" (default "123"); ROUNDS is how
# many rounds benchmark 1 takes its medians over (default 5).
#
# Everything runs on loopback with free ports; every process started is
# stopped by PID on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
SECS=${1:-20}
MAX_STREAMS=${2:-3}
SECTIONS=${3:-123}
ROUNDS=${4:-5}
ours=-; theirs=-; cpu_ratio=-; theirs_file=-; cpu_ratio_file=-; sustained=-; t_default=-; t_pass=-; t_nginx=-

bash scripts/setup.sh
cargo build --release --quiet --workspace --bins
BIN="$ROOT/target/release"
. "$ROOT/loadtest/bench/lib.sh"
now() { date +%s.%N; }

# The common input: 720p30 H.264 with a 2 s GOP and AAC, SECS long.
INPUT="$WORK/input.mp4"
ffmpeg -hide_banner -loglevel error -f lavfi -i "testsrc2=size=1280x720:rate=30" \
  -f lavfi -i "sine=frequency=440:sample_rate=48000" -t "$SECS" \
  -c:v libx264 -preset veryfast -g 60 -pix_fmt yuv420p -b:v 4000k -c:a aac -b:a 128k "$INPUT"

# --- router + origin -------------------------------------------------------
RPORT=$(free_port); APORT=$(free_port); RTMP=$(free_port); HTTP=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no > "$WORK/redis.log" 2>&1 & PIDS+=($!)
wait_for redis-cli -p "$RPORT" ping
export ROUTER_ADMIN_TOKEN=bench-admin-token-000000 ROUTER_AGENT_TOKEN=bench-agent-token-000000
"$BIN/router-api" --listen "127.0.0.1:$APORT" --redis "redis://127.0.0.1:$RPORT" --log warn > "$WORK/router.log" 2>&1 & PIDS+=($!)
wait_for curl -fsS "http://127.0.0.1:$APORT/readyz"
"$BIN/origin" --origin-id bench --rtmp-listen "127.0.0.1:$RTMP" --http-listen "127.0.0.1:$HTTP" \
  --output-dir "$WORK/out" --router "http://127.0.0.1:$APORT" --log warn > "$WORK/origin.log" 2>&1 & ORIGIN=$!; PIDS+=($ORIGIN)
wait_for curl -fsS "http://127.0.0.1:$HTTP/healthz"
create() { curl -fsS -H "Authorization: Bearer $ROUTER_ADMIN_TOKEN" -H 'content-type: application/json' \
  -d "{\"name\":\"$1\",\"profile\":\"$2\"}" "http://127.0.0.1:$APORT/admin/streams" | jq -r .key; }
publish() { ffmpeg -hide_banner -loglevel error -re -i "$INPUT" -c copy -f flv "rtmp://127.0.0.1:$RTMP/live/$1"; }

# --- 1. CPU per media second ---------------------------------------------
# Two ffmpeg peers encode the same ladder with the same x264 settings from the
# same input file:
#  - ffmpeg live: ffmpeg as a live transcoder (what nginx-rtmp's `exec ffmpeg`
#    setups run), listening for RTMP and fed by the same publisher as the
#    origin, at real time. The same job as the origin's: the like-for-like
#    peer, and the one the target is judged against.
#  - ffmpeg file: ffmpeg reading the file itself, as fast as it can: no
#    network ingest and no real-time pacing. Reported beside it.
# ROUNDS rounds, each the origin, then ffmpeg live, then ffmpeg file, so that
# the drift of a shared machine hits all alike; medians over rounds, and the
# ratios are medians of the rounds' ratios.
if [[ $SECTIONS == *1* ]]; then
# x264enc's rate control is CBR with a 600 ms VBV (nal_hrd=none, no filler):
# ffmpeg gets the same through -maxrate and -bufsize per rung.
X264="-c:v libx264 -preset veryfast -tune zerolatency -bf 0 -g 60 -keyint_min 60 -sc_threshold 0"
ladder() {  # $1 = output folder; the input options come before
  ffmpeg_args=(
    -filter_complex "[0:v]split=3[a][b][c];[a]scale=1280:720[v0];[b]scale=852:480[v1];[c]scale=640:360[v2]"
    -map "[v0]" -map "[v1]" -map "[v2]" -map 0:a
    $X264 -b:v:0 2800k -maxrate:v:0 2800k -bufsize:v:0 1680k -b:v:1 1200k -maxrate:v:1 1200k -bufsize:v:1 720k
    -b:v:2 700k -maxrate:v:2 700k -bufsize:v:2 420k -r 30 -c:a aac -b:a 128k -ar 48000 -ac 2
    -f hls -hls_time 2 -hls_segment_type fmp4 -hls_list_size 0
    -var_stream_map "v:0 v:1 v:2 a:0" -master_pl_name index.m3u8 "$1/%v/index.m3u8"
  )
}
listening() { ss -ltnH "sport = :$1" | grep -q .; }
per_media_s() { awk -v s="$SECS" '{printf "%.3f", ($1 + $2) / s}' "$1"; }
: > "$WORK/cpu-rounds"
for round in $(seq "$ROUNDS"); do
  KEY=$(create "cpu$round" default)
  before=$(cpu_of "$ORIGIN")
  publish "$KEY"
  sleep 1.5  # let the pipeline drain its last fragments (it ends within 0.7 s)
  o=$(awk -v a="$before" -v b="$(cpu_of "$ORIGIN")" -v s="$SECS" 'BEGIN {printf "%.3f", (b - a) / s}')

  rm -rf "$WORK/ff"; mkdir -p "$WORK/ff"; ladder "$WORK/ff"
  FFPORT=$(free_port)
  /usr/bin/env time -f "%U %S" -o "$WORK/ff-live.time" ffmpeg -hide_banner -loglevel fatal \
    -listen 1 -f flv -i "rtmp://127.0.0.1:$FFPORT/live/peer" "${ffmpeg_args[@]}" & ffpid=$!
  wait_for listening "$FFPORT"
  ffmpeg -hide_banner -loglevel error -re -i "$INPUT" -c copy -f flv "rtmp://127.0.0.1:$FFPORT/live/peer"
  wait "$ffpid" || true
  l=$(per_media_s "$WORK/ff-live.time")

  rm -rf "$WORK/ff"; mkdir -p "$WORK/ff"; ladder "$WORK/ff"
  /usr/bin/env time -f "%U %S" -o "$WORK/ff-file.time" ffmpeg -hide_banner -loglevel error -i "$INPUT" "${ffmpeg_args[@]}"
  f=$(per_media_s "$WORK/ff-file.time")
  echo "$o $l $f" >> "$WORK/cpu-rounds"
  echo "1. round $round: origin $o, ffmpeg live $l, ffmpeg file $f CPU s per media s"
done
col() { awk -v c="$1" '{print $c}' "$WORK/cpu-rounds" | median; }
ratio() { awk -v c="$1" '{printf "%.3f\n", $c / $1}' "$WORK/cpu-rounds" | median | xargs printf %.2f; }
ours=$(col 1); theirs=$(col 2); theirs_file=$(col 3)
cpu_ratio=$(ratio 2); cpu_ratio_file=$(ratio 3)
led=$(awk '$2 >= $1' "$WORK/cpu-rounds" | wc -l)
echo "1. CPU s per media s, default ladder (medians of $ROUNDS rounds): origin $ours, ffmpeg live $theirs (ffmpeg/origin $cpu_ratio; origin no worse in $led of $ROUNDS rounds), ffmpeg file $theirs_file (ffmpeg/origin $cpu_ratio_file)"
fi

# --- 2. streams sustained at real time ------------------------------------
if [[ $SECTIONS == *2* ]]; then
sustained=0
for n in $(seq 1 "$MAX_STREAMS"); do
  keys=(); names=()
  for i in $(seq 1 "$n"); do names+=("load$n-$i"); keys+=("$(create "load$n-$i" default)"); done
  pubs=()
  for k in "${keys[@]}"; do publish "$k" & pubs+=($!); done
  worst=0
  # Sample the encoder lag while they run.
  end=$((SECONDS + SECS - 2))
  while [ $SECONDS -lt $end ]; do
    lag=$(curl -fsS "http://127.0.0.1:$HTTP/metrics" | awk '/^origin_encoder_lag_seconds/ {if ($2 > m) m = $2} END {print m + 0}')
    worst=$(awk -v a="$worst" -v b="$lag" 'BEGIN {print (b > a) ? b : a}')
    sleep 1
  done
  for p in "${pubs[@]}"; do wait "$p" || true; done
  sleep 1.5
  # Segments each rendition should have written: about SECS / 2.
  short=0
  for s in "${names[@]}"; do
    for pl in "$WORK"/out/"$s"/*/*/index.m3u8; do
      last=$(grep -o '^[0-9]*\.m4s' "$pl" | tail -1 | cut -d. -f1)
      [ "${last:-0}" -ge $((SECS / 2 - 2)) ] || short=1
    done
  done
  ok=$(awk -v w="$worst" 'BEGIN {print (w < 2.0) ? 1 : 0}')
  echo "2. $n stream(s): worst encoder lag ${worst}s, all segments written: $((1 - short))"
  if [ "$ok" = 1 ] && [ "$short" = 0 ]; then sustained=$n; else break; fi
done
echo "2. default-ladder streams sustained at real time: $sustained"
fi

# --- 3. first frame to first segment listed --------------------------------
first_segment() {  # $1 = playlist path to poll; prints seconds since $2
  local end=$((SECONDS + 20))
  while [ $SECONDS -lt $end ]; do
    if [ -f "$1" ] && grep -q '\.\(m4s\|ts\)' "$1"; then awk -v a="$2" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}'; return; fi
    sleep 0.02
  done
  echo "timeout"
}
# Ours counts when the multivariant playlist exists: every rendition has
# listed a segment and a player can start.
ours_ttfs() {  # $1 = profile
  local name="ttfs-$1" key t0 pub r=timeout
  key=$(create "$name" "$1")
  t0=$(now)
  publish "$key" & pub=$!
  local end=$((SECONDS + 20))
  while [ $SECONDS -lt $end ]; do
    if [ -f "$WORK/out/$name/index.m3u8" ]; then r=$(awk -v a="$t0" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}'); break; fi
    sleep 0.02
  done
  kill "$pub" 2>/dev/null || true; wait "$pub" 2>/dev/null || true
  echo "$r"
}
if [[ $SECTIONS == *3* ]]; then
rm -rf "$WORK/out"/*
t_default=$(ours_ttfs default)
rm -rf "$WORK/out"/*
sleep 1
t_pass=$(ours_ttfs passthrough)

NPORT=$(free_port)
mkdir -p "$WORK/nginx/hls"
cat > "$WORK/nginx/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
user root;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
rtmp {
  server {
    listen 127.0.0.1:$NPORT;
    application live {
      live on;
      hls on;
      hls_path $WORK/nginx/hls;
      hls_fragment 2s;
      hls_playlist_length 6s;
    }
  }
}
CONF
nginx -c "$WORK/nginx/nginx.conf" & PIDS+=($!)
wait_for bash -c "exec 3<>/dev/tcp/127.0.0.1/$NPORT"
t0=$(now)
ffmpeg -hide_banner -loglevel error -re -i "$INPUT" -c copy -f flv "rtmp://127.0.0.1:$NPORT/live/nginx" & pub=$!
t_nginx=$(first_segment "$WORK/nginx/hls/nginx.m3u8" "$t0")
kill "$pub" 2>/dev/null || true; wait "$pub" 2>/dev/null || true
echo "3. publisher start -> first segment listed: origin default ladder ${t_default}s, origin passthrough ${t_pass}s, nginx-rtmp ${t_nginx}s"
fi

echo
echo "| $(date -u +%F) | ${SECS}s 720p30 input | $ours | $theirs | $cpu_ratio | $theirs_file | $cpu_ratio_file | $sustained | $t_default | $t_pass | $t_nginx |"
