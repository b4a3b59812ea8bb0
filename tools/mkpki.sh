#!/bin/sh
# A throwaway PKI for trying the SVM link's mutual TLS (demo, tests, a
# first look): tools/mkpki.sh DIR [SVM_SAN] writes into DIR
#   ca.pem ca.key     the CA (valid 7 days)
#   svm.pem svm.key   an SVM's server certificate, SAN SVM_SAN
#                     (default IP:127.0.0.1; e.g. DNS:svm.example)
#   mux.pem mux.key   muxd's client certificate (CN and DNS SAN mux.local)
# EC P-256, made with the openssl command. Not for production: a real
# deployment uses the vendor's or the site's CA.
set -eu
dir=${1:?usage: mkpki.sh DIR [SVM_SAN]}
san=${2:-IP:127.0.0.1}
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	-keyout ca.key -out ca.pem -days 7 -subj /CN=mux-demo-ca \
	-addext basicConstraints=critical,CA:TRUE \
	-addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
leaf() {	# NAME SERIAL EKU SAN
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null
	printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' \
		"$3" "$4" >"$1.ext"
	openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -set_serial "$2" \
		-days 7 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
	rm -f "$1.csr" "$1.ext"
}
leaf svm 2 serverAuth "$san"
leaf mux 3 clientAuth DNS:mux.local
chmod 600 ./*.key
