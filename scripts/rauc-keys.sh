#!/bin/sh
# Makes the keys that sign StreamPulse update bundles (docs/UPDATES.md):
#
#   scripts/rauc-keys.sh DIR [NAME]
#
# DIR/ca.key.pem, DIR/ca.cert.pem   a CA: its certificate is the keyring the
#                                   image trusts (/etc/rauc/keyring.pem)
# DIR/signing.key.pem, DIR/signing.cert.pem
#                                   a signing key and its certificate, issued
#                                   by that CA, for `make bundle`
#
# Keys are made 0600 in a 0700 directory and must never be committed: keep
# DIR outside the repository (or under target/, which git ignores) and back
# it up; a box only accepts bundles signed under the CA its image carries.
# NAME goes into the certificates' subjects (default "StreamPulse").
# Refuses to overwrite existing keys.
set -eu
[ $# -ge 1 ] || { echo "usage: $0 DIR [NAME]" >&2; exit 2; }
dir=$1
name=${2:-StreamPulse}
if [ -e "$dir/ca.key.pem" ] || [ -e "$dir/signing.key.pem" ]; then
    echo "rauc-keys: $dir already holds keys; not overwriting them" >&2
    exit 1
fi
umask 077
mkdir -p "$dir"
chmod 0700 "$dir"
cnf="$dir/openssl.cnf"
cat >"$cnf" <<'CNF'
[ca_ext]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[signing_ext]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/ca.key.pem" -out "$dir/ca.cert.pem" -days 7300 \
    -subj "/O=$name/CN=$name update CA" -config "$cnf" -extensions ca_ext 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$dir/signing.key.pem" -out "$dir/signing.csr.pem" \
    -subj "/O=$name/CN=$name update signing" 2>/dev/null
openssl x509 -req -in "$dir/signing.csr.pem" -CA "$dir/ca.cert.pem" -CAkey "$dir/ca.key.pem" \
    -CAcreateserial -out "$dir/signing.cert.pem" -days 3650 \
    -extfile "$cnf" -extensions signing_ext 2>/dev/null
rm -f "$dir/signing.csr.pem" "$dir/ca.cert.srl" "$cnf"
chmod 0644 "$dir/ca.cert.pem" "$dir/signing.cert.pem"
echo "rauc-keys: CA and signing key in $dir (keyring for the image: $dir/ca.cert.pem)"
