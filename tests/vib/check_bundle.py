#!/usr/bin/env python3
"""Structure and consistency of an offline bundle: check_bundle.py ZIP VIB

index.xml -> vendor-index.xml -> metadata.zip (vmware.xml, bulletins/,
vibs/) -> vib20/NAME/VIBID.vib, and that every name, version, id, size and
checksum agrees with the VIB itself. Prints one line per fault and exits 1,
or prints "bundle OK ..." and exits 0.
"""
import hashlib
import io
import sys
import xml.etree.ElementTree as ET
import zipfile

faults = []


def fault(msg):
    faults.append(msg)
    print("check_bundle: " + msg)


def ar_members(data):
    """The members of an ar archive, as {name: bytes}, in order."""
    if data[:8] != b"!<arch>\n":
        raise ValueError("not an ar archive")
    out, off = {}, 8
    while off < len(data):
        h = data[off:off + 60]
        name = h[:16].decode().rstrip(" ").rstrip("/")
        size = int(h[48:58].decode().strip())
        out[name] = data[off + 60:off + 60 + size]
        off += 60 + size + (size & 1)
    return out


def canon(el):
    """An element without layout: tag, attributes, stripped text, children."""
    return (el.tag, sorted(el.attrib.items()), (el.text or "").strip(),
            [canon(k) for k in el])


def text(el, path):
    x = el.find(path)
    return None if x is None else (x.text or "")


def main():
    zpath, vpath = sys.argv[1], sys.argv[2]
    vib = open(vpath, "rb").read()
    desc = ET.fromstring(ar_members(vib)["descriptor.xml"])
    name, version, vendor = (text(desc, "name"), text(desc, "version"),
                             text(desc, "vendor"))
    vibid = "%s_%s_%s_%s" % (vendor, text(desc, "type"), name, version)

    z = zipfile.ZipFile(zpath)
    names = z.namelist()
    want = sorted(["index.xml", "vendor-index.xml", "metadata.zip",
                   "vib20/%s/%s.vib" % (name, vibid)])
    if sorted(names) != want:
        fault("bundle entries %s, expected %s" % (sorted(names), want))
    if names != sorted(names):
        fault("bundle entries are not sorted: %s" % names)

    index = ET.fromstring(z.read("index.xml"))
    if index.tag != "vendorList":
        fault("index.xml root is <%s>, expected <vendorList>" % index.tag)
    if text(index, "vendor/name") != vendor:
        fault("index.xml vendor name %r, VIB vendor %r"
              % (text(index, "vendor/name"), vendor))
    vindex = text(index, "vendor/indexfile")
    if vindex not in names:
        fault("index.xml names indexfile %r, not in the bundle" % vindex)
        return
    if text(index, "vendor/content/type") != \
            "http://www.vmware.com/depotmanagement/esx":
        fault("index.xml content type is not the ESX depot type")

    meta = ET.fromstring(z.read(vindex))
    if meta.tag != "metaList" or text(meta, "metadata/productId") != \
            "embeddedEsx":
        fault("vendor-index.xml: expected <metaList> with productId "
              "embeddedEsx")
    murl = text(meta, "metadata/url")
    if murl not in names:
        fault("vendor-index.xml names url %r, not in the bundle" % murl)
        return

    mz = zipfile.ZipFile(io.BytesIO(z.read(murl)))
    mnames = sorted(mz.namelist())
    bull = [n for n in mnames if n.startswith("bulletins/")]
    vibs = [n for n in mnames if n.startswith("vibs/")]
    if "vmware.xml" not in mnames or len(bull) != 1 or len(vibs) != 1 or \
            len(mnames) != 3:
        fault("metadata.zip holds %s, expected vmware.xml, one bulletin, "
              "one vib" % mnames)
        return
    vm = ET.fromstring(mz.read("vmware.xml"))
    if vm.tag != "metadataResponse":
        fault("vmware.xml root is <%s>" % vm.tag)
    b = vm.find("bulletin")
    v = vm.find("vib")
    if b is None or v is None:
        fault("vmware.xml lacks <bulletin> or <vib>")
        return

    bid = text(b, "id")
    if bull[0] != "bulletins/%s.xml" % bid:
        fault("bulletin file %s does not match bulletin id %s" % (bull[0],
                                                                   bid))
    if canon(ET.fromstring(mz.read(bull[0]))) != canon(b):
        fault("%s differs from the bulletin in vmware.xml" % bull[0])
    ids = [x.text for x in b.findall("vibList/vibID")]
    if ids != [vibid]:
        fault("bulletin vibList %s, expected [%s]" % (ids, vibid))
    cn, cv = b.find("componentNameSpec"), b.find("componentVersionSpec")
    if cn is None or cn.get("name") != name:
        fault("componentNameSpec name is not the VIB name %r" % name)
    if cv is None or cv.get("version") != version:
        fault("componentVersionSpec version is not the VIB version %r"
              % version)
    if text(b, "vendor") != vendor:
        fault("bulletin vendor %r, VIB vendor %r" % (text(b, "vendor"),
                                                     vendor))

    if vibs[0] != "vibs/%s.xml" % vibid:
        fault("vib metadata file %s, expected vibs/%s.xml" % (vibs[0],
                                                              vibid))
    if canon(ET.fromstring(mz.read(vibs[0]))) != canon(v):
        fault("%s differs from the vib in vmware.xml" % vibs[0])
    rel = text(v, "relative-path")
    if rel not in names:
        fault("vib relative-path %r is not in the bundle" % rel)
        return
    data = z.read(rel)
    if data != vib:
        fault("%s is not the VIB %s byte for byte" % (rel, vpath))
    if text(v, "packed-size") != str(len(data)):
        fault("packed-size %s, the VIB has %d bytes"
              % (text(v, "packed-size"), len(data)))
    sums = [c for c in v.findall("checksum")]
    if len(sums) != 1 or sums[0].get("checksum-type") != "sha-256" or \
            sums[0].text != hashlib.sha256(data).hexdigest():
        fault("vib checksum is not the sha-256 of the VIB")
    # The depot's copy of the descriptor says what descriptor.xml says.
    for el in desc:
        got = v.find(el.tag)
        if got is None or canon(got) != canon(el):
            fault("vmware.xml <vib> element <%s> differs from the VIB's "
                  "descriptor.xml" % el.tag)
    if not faults:
        print("bundle OK: %s, component %s %s, %d entries, metadata %s"
              % (zpath, cn.get("name"), cv.get("version"), len(names),
                 mnames))


if __name__ == "__main__":
    try:
        main()
    except (KeyError, ValueError, ET.ParseError, zipfile.BadZipFile) as e:
        fault("%s: %s" % (type(e).__name__, e))
    sys.exit(1 if faults else 0)
