#!/bin/sh
# Lint one manual page: mandoc -T lint and groff -ww must both be silent.
# Exit 77 (skipped) when a linter is missing.
page=$1
for tool in mandoc groff; do
	command -v $tool >/dev/null 2>&1 || { echo "$tool not installed"; exit 77; }
done
out=$(
	mandoc -T lint "$page" 2>&1
	groff -ww -man -Tutf8 "$page" 2>&1 >/dev/null
	groff -ww -t -man -Tutf8 "$page" 2>&1 >/dev/null
)
if [ -n "$out" ]; then
	printf '%s\n' "$out"
	exit 1
fi
