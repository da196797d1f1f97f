# private-apt.sh (sourced): apt-get with private lists, state and cache over one or more
# suites of the Debian archive this machine already uses, so that the system's apt state
# is untouched. The archive URIs come from the machine's own apt configuration (deb822 and
# one-line formats; security and third-party repositories skipped).
#   private_apt_setup WORKDIR TYPE "SUITES"   (TYPE: deb or deb-src) sets the array aptopts
#   and runs apt-get update with it; returns non-zero when no archive or no update.
private_apt_setup() {
  local work="$1" type="$2" suites="$3" uris u suite
  mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/apt/state"
  uris=$( { cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk 'tolower($1)=="uris:"{for(i=2;i<=NF;i++) print $i}';
            cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '$1=="deb"||$1=="deb-src"{for(i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//){print $i; break}}'; } \
          | grep -v -- '-security' | grep -E '/debian/?$' | sort -u || true)
  [ -n "$uris" ] || { echo "ftsan-setup: cannot derive a Debian archive from /etc/apt sources" >&2; return 1; }
  : > "$work/apt/sources.list"
  for u in $uris; do for suite in $suites; do
    echo "$type [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $u $suite main" >> "$work/apt/sources.list"
  done; done
  aptopts=(-o Dir::Etc::SourceList="$work/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
           -o Dir::State="$work/apt/state" -o Dir::State::Lists="$work/apt/lists"
           -o Dir::Cache="$work/apt/cache" -o Dir::State::status=/var/lib/dpkg/status
           -o APT::Get::List-Cleanup=0 -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
  apt-get "${aptopts[@]}" update -qq >&2
}
