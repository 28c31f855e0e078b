# Helpers shared by the CLI guest tests (sourced after lib.sh, with $tmp set).
# shellcheck shell=bash disable=SC2154 # $tmp: lib.sh's

# slurp VAR FILE: VAR=$(cat FILE) without a fork (they are slow under TCG).
slurp() {
	IFS= read -r -d '' "$1" <"$2" || true
	printf -v "$1" '%s' "${!1%$'\n'}"
}
# run CMD...: runs it, leaving $rc, $out (stdout) and $err (stderr).
run() {
	set +e
	"$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	set -e
	slurp out "$tmp/out"
	slurp err "$tmp/err"
}
# expect_fail RC CMD... -- TEXT...: CMD exits RC, prints nothing on stdout
# and each TEXT on stderr.
expect_fail() {
	local want=$1 cmd=() t
	shift
	while [ "$1" != -- ]; do
		cmd+=("$1")
		shift
	done
	shift
	run "${cmd[@]}"
	[ "$rc" = "$want" ] || fail "'${cmd[*]}': exit $rc, want $want (stderr: $err)"
	[ -z "$out" ] || fail "'${cmd[*]}': printed '$out' on stdout"
	[ -n "$err" ] || fail "'${cmd[*]}': no message on stderr"
	for t in "$@"; do
		[[ $err == *"$t"* ]] || fail "'${cmd[*]}': stderr '$err' lacks '$t'"
	done
}
