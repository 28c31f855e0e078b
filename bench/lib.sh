# Helpers the guest sides of `make bench` source.
# shellcheck shell=bash

# fio_name PATH: PATH escaped for fio, which splits --filename at ':'
# (image devices are blksnap-image_MAJ:MIN).
fio_name() { printf '%s' "${1//:/\\:}"; }

# fio_pair FIELD A B FIO-ARGS...: one fio run of the same job on files A and
# B at once; prints "a b", the jobs' FIELD: read_bw or write_bw (MiB/s), or
# write_iops. Both sides see the same seconds, hence the same drift of the
# guest's speed (10-20% over seconds under QEMU without KVM).
fio_pair() {
	local field=$1 a=$2 b=$3
	shift 3
	fio --direct=1 --ioengine=libaio --time_based --output-format=json "$@" \
		--name=a --filename="$(fio_name "$a")" --name=b --filename="$(fio_name "$b")" |
		python3 -c 'import json,sys
kind, what = sys.argv[1].split("_")
j = {x["jobname"]: x[kind][what] / (1024 if what == "bw" else 1) for x in json.load(sys.stdin)["jobs"]}
print(j["a"], j["b"])' "$field"
}

mean() { python3 -c 'import statistics,sys; print(statistics.mean(float(x) for x in sys.argv[1:]))' "$@"; }
median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

# spread NAME "VALUES...": a "#" line with the rounds' min, median and max.
spread() {
	python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[2].split()]
print(f"# {sys.argv[1]}: min {min(v):.4g}, median {statistics.median(v):.4g}, max {max(v):.4g} ({len(v)} rounds)")' "$@"
}

# per_round NAME "MEASURED..." "BASELINE...": a "#" line with the ratio of
# each round and its standard error.
per_round() {
	python3 -c 'import statistics,sys; m,b=sys.argv[2].split(),sys.argv[3].split()
r=[float(x)/float(y) for x,y in zip(m,b)]
print(f"# {sys.argv[1]}: ratio per round {[round(x,3) for x in r]}, +- {statistics.stdev(r)/len(r)**.5:.3f} (1 s.e.)")' "$@"
}

# row NAME BASELINE MEASURED UNIT TARGET [RATIO]: the "BENCH {json}" line
# report.py reads. The ratio is MEASURED / BASELINE unless RATIO is given
# (bench/pgbench.sh: the median of paired windows' ratios, with the
# windows' medians as BASELINE and MEASURED). $BENCH_TAG (bench/run: the
# kernel and interception of a guest other than the first) is appended to
# NAME in parentheses.
row() {
	python3 -c 'import json,sys; tag,n,b,m,u,t=sys.argv[1:7]; b,m=float(b),float(m)
r = float(sys.argv[7]) if len(sys.argv) > 7 else m/b
n = f"{n} ({tag})" if tag else n
print("BENCH "+json.dumps({"name":n,"baseline":round(b,2),"measured":round(m,2),"unit":u,"ratio":round(r,3),"target":float(t)}))' "${BENCH_TAG:-}" "$@"
}
# ab R A B: A then B in odd rounds R, B then A in even ones (ABBA rounds).
ab() { if [ $(($1 % 2)) = 1 ]; then echo "$2 $3"; else echo "$3 $2"; fi; }
# row_lower NAME BASELINE MEASURED UNIT TARGET: a row where lower is better.
row_lower() { row "$@" | sed 's/}$/, "lower": true}/'; }
