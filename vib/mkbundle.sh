#!/bin/sh
# Build the offline bundle (depot zip) for vSphere Lifecycle Manager and
# `esxcli software component apply -d`: vib/mkbundle.sh VIB OUT_DIR
#
#   index.xml             vendor list -> vendor-index.xml
#   vendor-index.xml      metadata list -> metadata.zip
#   metadata.zip          vmware.xml (bulletin + VIB), bulletins/ID.xml,
#                         vibs/VIBID.xml
#   vib20/NAME/VIBID.vib  the VIB, unchanged
#
# The bulletin makes the VIB a component: componentNameSpec = the VIB's
# name, componentVersionSpec = its version. Everything comes from the
# VIB's descriptor.xml (name, version, vendor, release date), so the same
# VIB always gives the same bundle bytes (sorted entries, fixed mtimes, no
# extra zip attributes). Prints the bundle's path on the last line.
set -eu
export LC_ALL=C TZ=UTC
umask 022

VIB=${1:?usage: mkbundle.sh VIB OUT_DIR}
OUT=${2:?usage: mkbundle.sh VIB OUT_DIR}

die() {
	echo "mkbundle: $*" >&2
	exit 1
}

[ -f "$VIB" ] || die "$VIB: no such file"
mkdir -p "$OUT"
W=$(mktemp -d "$OUT/.mkbundle.XXXXXX")
W=$(cd "$W" && pwd)
trap 'rm -rf "$W"' EXIT INT TERM

ar p "$VIB" descriptor.xml >"$W/descriptor.xml" ||
    die "$VIB: no descriptor.xml member"
# One element per line, as vib/descriptor.xml.in writes them.
el() {
	sed -n "s|^ *<$1>\\(.*\\)</$1>\$|\\1|p" "$W/descriptor.xml" | head -n 1
}
NAME=$(el name)
VERSION=$(el version)
VENDOR=$(el vendor)
SUMMARY=$(el summary)
DESCRIPTION=$(el description)
DATE=$(el release-date)
[ -n "$NAME" ] && [ -n "$VERSION" ] && [ -n "$VENDOR" ] && [ -n "$DATE" ] ||
    die "$VIB: descriptor.xml lacks name, version, vendor or release-date"
EPOCH=$(date -u -d "$DATE" +%s) || die "bad release-date '$DATE'"
VIBID=${VENDOR}_bootbank_${NAME}_$VERSION
BULLETIN=${NAME}_$VERSION
VIBPATH=vib20/$NAME/$VIBID.vib
SIZE=$(wc -c <"$VIB" | tr -d ' ')
SHA256=$(sha256sum "$VIB" | cut -d' ' -f1)

B=$W/bundle
M=$W/metadata
mkdir -p "$B/vib20/$NAME" "$M/bulletins" "$M/vibs"
cp "$VIB" "$B/$VIBPATH"

cat >"$B/index.xml" <<EOF
<?xml version="1.0" encoding="utf-8"?>
<vendorList>
  <vendor>
    <name>$VENDOR</name>
    <code>$VENDOR</code>
    <indexfile>vendor-index.xml</indexfile>
    <patchUrl></patchUrl>
    <relativePath></relativePath>
    <content>
      <name>VMware ESXi</name>
      <type>http://www.vmware.com/depotmanagement/esx</type>
    </content>
  </vendor>
</vendorList>
EOF

cat >"$B/vendor-index.xml" <<EOF
<?xml version="1.0" encoding="utf-8"?>
<metaList>
  <metadata>
    <productId>embeddedEsx</productId>
    <version></version>
    <locale></locale>
    <url>metadata.zip</url>
  </metadata>
</metaList>
EOF

# The bulletin: one component of one VIB, for ESXi 6.7, 7.0 and 8.0.
cat >"$W/bulletin" <<EOF
<bulletin>
  <id>$BULLETIN</id>
  <vendor>$VENDOR</vendor>
  <summary>$SUMMARY</summary>
  <severity>general</severity>
  <category>enhancement</category>
  <releaseType>extension</releaseType>
  <description>$DESCRIPTION</description>
  <kbUrl></kbUrl>
  <contact></contact>
  <releaseDate>$DATE</releaseDate>
  <platforms>
    <softwarePlatform productLineID="embeddedEsx" version="6.7.*" locale=""/>
    <softwarePlatform productLineID="embeddedEsx" version="7.0.*" locale=""/>
    <softwarePlatform productLineID="embeddedEsx" version="8.0.*" locale=""/>
  </platforms>
  <vibList>
    <vibID>$VIBID</vibID>
  </vibList>
  <componentNameSpec name="$NAME" uiString="$NAME"/>
  <componentVersionSpec version="$VERSION" uiString="$VERSION"/>
</bulletin>
EOF

# The VIB's metadata: its descriptor plus where the VIB is and its digest.
sed "s|^</vib>\$|  <relative-path>$VIBPATH</relative-path>\\
  <packed-size>$SIZE</packed-size>\\
  <checksum checksum-type=\"sha-256\">$SHA256</checksum>\\
</vib>|" "$W/descriptor.xml" >"$W/vib"
grep -q '<relative-path>' "$W/vib" || die "descriptor.xml does not end in </vib>"

{
	echo '<?xml version="1.0" encoding="utf-8"?>'
	cat "$W/bulletin"
} >"$M/bulletins/$BULLETIN.xml"
{
	echo '<?xml version="1.0" encoding="utf-8"?>'
	cat "$W/vib"
} >"$M/vibs/$VIBID.xml"
{
	echo '<?xml version="1.0" encoding="utf-8"?>'
	echo '<metadataResponse>'
	echo '  <version>3.0</version>'
	echo "  <timestamp>$DATE</timestamp>"
	sed 's/^/  /' "$W/bulletin"
	sed 's/^/  /' "$W/vib"
	echo '</metadataResponse>'
} >"$M/vmware.xml"

# Deterministic zips: fixed mtimes (UTC), sorted names, no extra fields.
zipdir() {
	(cd "$1" && find . -mindepth 1 -exec touch -h -d "@$EPOCH" {} + &&
	    find . -type f | sed 's|^\./||' | sort | zip -q -X -D -9 "$2" -@)
}
zipdir "$M" "$B/metadata.zip"
ZIP=$OUT/$NAME-$VERSION-offline-bundle.zip
rm -f "$W/bundle.zip"
zipdir "$B" "$W/bundle.zip"
mv "$W/bundle.zip" "$ZIP"
echo "$ZIP"
