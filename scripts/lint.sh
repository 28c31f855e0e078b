#!/usr/bin/env bash
# Static checks: checkpatch --strict and sparse on the kernel module, the
# shell scripts' lint (shellcheck), the Python tools' (pyflakes),
# clang-format on the C++ sources. Prints problems; exits non-zero on any.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
status=0

# checkpatch.pl from Debian's linux-source-6.12 (extracted once).
tools=build/tools/checkpatch
if [ ! -x "$tools/scripts/checkpatch.pl" ]; then
	mkdir -p "$tools"
	src=$(ls /usr/src/linux-source-6.12.tar.* | head -n1)
	tar -xf "$src" -C "$tools" --strip-components=1 --wildcards \
		'*/scripts/checkpatch.pl' '*/scripts/spelling.txt' \
		'*/scripts/const_structs.checkpatch'
fi
for f in kmodule/*.c kmodule/*.h kmodule/include/uapi/linux/*.h; do
	if ! out=$("$tools/scripts/checkpatch.pl" --strict --no-tree --terse \
		--quiet -f "$f" 2>&1); then
		echo "$out"
		status=1
	fi
done

# sparse: a C=2 build (check every file) against a stock kernel's headers.
kernel=${LINT_KERNEL:-stock-6.12}
if [ -d "build/kernels/$kernel/kdir" ]; then
	out=build/kmod/lint-sparse
	rm -rf "$out" && mkdir -p "$out"
	cp -r kmodule/. "$out/"
	rm -rf "$out"/kernel-*/
	if ! make -s -C "build/kernels/$kernel/kdir" M="$top/$out" C=2 \
		modules >"$out.log" 2>&1 || grep -E 'warning|error' "$out.log"; then
		echo "sparse: see $out.log"
		status=1
	fi
else
	echo "sparse: skipped, no build/kernels/$kernel (scripts/kernels.sh ensure $kernel)"
fi

# Every shell script of the repository (named *.sh or *.bash, or with a sh
# or bash shebang) through shellcheck, at warning level, following what it
# sources.
mapfile -t shells < <(git ls-files -z | xargs -0 awk 'FNR == 1 {
	if (FILENAME ~ /\.(sh|bash)$/ || /^#!.*[\/ ](ba)?sh( |$)/) print FILENAME
	nextfile
}')
if [ ${#shells[@]} -gt 0 ] &&
	! shellcheck -x -P SCRIPTDIR -S warning -f gcc "${shells[@]}"; then
	status=1
fi

# pyflakes: the Python tools (tests/) import what they use, use what they
# assign, name nothing undefined.
mapfile -t pys < <(git ls-files '*.py')
if [ ${#pys[@]} -gt 0 ] && ! pyflakes3 "${pys[@]}"; then
	status=1
fi

# clang-format: the C++ sources must be formatted with the repo's style.
mapfile -t cxx < <(git ls-files '*.cpp' '*.hpp' '*.h' | grep -v '^kmodule/')
if [ ${#cxx[@]} -gt 0 ] && ! clang-format --dry-run -Werror "${cxx[@]}" 2>&1; then
	status=1
fi

exit $status
