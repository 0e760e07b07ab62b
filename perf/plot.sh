#!/bin/sh
# Turns a results folder (results.jsonl from perf/sweep.sh) into
# results.csv (every run), summary.csv (mean per system and quorum), a
# table on standard output with qkv/Redis ratios when Redis ran, and PNG
# plots drawn by gnuplot:
#   latency_line.png  avg, p50, p99 latency against quorum (lines)
#   latency_bars.png  the same as clustered bars
#   throughput.png    writes per second against quorum
# Usage: perf/plot.sh RESULTS_DIR
set -eu
. "$(dirname "$0")/json.sh"
DIR=${1:?usage: perf/plot.sh RESULTS_DIR}
[ -s "$DIR/results.jsonl" ] || { echo "plot: no $DIR/results.jsonl" >&2; exit 2; }
command -v gnuplot >/dev/null || { echo "plot: gnuplot missing (scripts/deps.sh perf)" >&2; exit 2; }

# one CSV row per run
awk "$JSON_FIELD"'
BEGIN { print "system,quorum,repeat,throughput,avg_ms,p50_ms,p95_ms,p99_ms,min_ms,max_ms,ok,failed,bench_cpu_pct" }
{
    print field("system") "," field("quorum") "," field("repeat") "," \
          field("throughput") "," field("avg_ms") "," field("p50_ms") "," \
          field("p95_ms") "," field("p99_ms") "," field("min_ms") "," \
          field("max_ms") "," field("ok") "," field("failed") "," \
          field("bench_cpu_pct")
}' "$DIR/results.jsonl" >"$DIR/results.csv"

# mean per system and quorum
awk -F, 'NR > 1 {
    k = $1 "," $2; n[k]++
    for (i = 4; i <= 8; i++) s[k, i] += $i
    if (!(k in seen)) { seen[k] = 1; order[++m] = k }
}
END {
    print "system,quorum,throughput,avg_ms,p50_ms,p95_ms,p99_ms"
    for (j = 1; j <= m; j++) {
        k = order[j]
        printf "%s", k
        for (i = 4; i <= 8; i++) printf ",%.4f", s[k, i] / n[k]
        printf "\n"
    }
}' "$DIR/results.csv" >"$DIR/summary.csv"

grep '^qkv,' "$DIR/summary.csv" | tr , ' ' >"$DIR/qkv.dat"
grep '^redis,' "$DIR/summary.csv" | tr , ' ' >"$DIR/redis.dat" || true

# table, with ratios when Redis ran
awk -F, 'NR > 1 { v[$1, $2] = $0; if ($2 + 0 > max) max = $2 + 0 }
END {
    printf "%-7s %-6s %12s %9s %9s %9s\n", "quorum", "system", "writes/s", "avg ms", "p50 ms", "p99 ms"
    for (q = 0; q <= max; q++) {
        for (k = 1; k <= 2; k++) {
            s = k == 1 ? "qkv" : "redis"
            if (!((s, q) in v)) continue
            split(v[s, q], f, ",")
            printf "%-7s %-6s %12.0f %9.3f %9.3f %9.3f\n", q, s, f[3], f[4], f[5], f[7]
        }
        if (("qkv", q) in v && ("redis", q) in v) {
            split(v["qkv", q], a, ","); split(v["redis", q], b, ",")
            printf "%-7s %-6s %11.2fx %8.2fx %8.2fx %8.2fx   (qkv/redis)\n", q, "ratio", a[3] / b[3], a[4] / b[4], a[5] / b[5], a[7] / b[7]
        }
    }
}' "$DIR/summary.csv" | tee "$DIR/table.txt"

redis_lines=""
redis_tput=""
if [ -s "$DIR/redis.dat" ]; then
    redis_lines=", '$DIR/redis.dat' using 2:4 with linespoints dt 2 title 'Redis avg', '' using 2:5 with linespoints dt 2 title 'Redis p50', '' using 2:7 with linespoints dt 2 title 'Redis p99'"
    redis_tput=", '$DIR/redis.dat' using 2:3 with linespoints dt 2 title 'Redis SET+WAIT'"
fi

gnuplot <<GNUPLOT
set terminal pngcairo size 900,560 font "sans,11" noenhanced
set grid
set key top left
set xlabel "WRITE_QUORUM"
set xtics 1
set output "$DIR/latency_line.png"
set title "Write latency against quorum"
set ylabel "latency (ms)"
plot '$DIR/qkv.dat' using 2:4 with linespoints lw 2 title 'qkv avg', \
     '' using 2:5 with linespoints lw 2 title 'qkv p50', \
     '' using 2:7 with linespoints lw 2 title 'qkv p99' $redis_lines

set output "$DIR/throughput.png"
set title "Throughput against quorum"
set ylabel "committed writes per second"
set yrange [0:*]
plot '$DIR/qkv.dat' using 2:3 with linespoints lw 2 title 'qkv' $redis_tput

set output "$DIR/latency_bars.png"
set title "qkv write latency against quorum"
set ylabel "latency (ms)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set xtics auto
set xlabel "WRITE_QUORUM"
plot '$DIR/qkv.dat' using 4:xtic(2) title 'avg', '' using 5 title 'p50', \
     '' using 7 title 'p99'
GNUPLOT
echo "plots: $DIR/latency_line.png $DIR/latency_bars.png $DIR/throughput.png" >&2
