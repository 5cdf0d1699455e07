package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The user the components run as: the distroless "nonroot" numbers, which
// the chart and config/ set as runAsUser/runAsGroup too.
const (
	uid        = 65532
	binaryPath = "usr/local/bin/integration-operator"
)

// entry is one file or directory of a layer.
type entry struct {
	name     string
	mode     int64
	uid      int
	data     []byte
	typeflag byte
}

func dir(name string, mode int64) entry { return entry{name: name, mode: mode, typeflag: tar.TypeDir} }

func file(name string, mode int64, data []byte) entry {
	return entry{name: name, mode: mode, data: data, typeflag: tar.TypeReg}
}

// baseEntries are the files every platform's image shares: the user, the
// CA bundle, a home and a /tmp (nothing writes there today; a mounted
// emptyDir would need the mount point on a read-only root).
func baseEntries(ca []byte) []entry {
	home := dir("home/nonroot", 0o700)
	home.uid = uid
	return []entry{
		dir("etc", 0o755),
		file("etc/group", 0o644, []byte("root:x:0:\nnonroot:x:65532:\n")),
		file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")),
		dir("etc/ssl", 0o755),
		dir("etc/ssl/certs", 0o755),
		file("etc/ssl/certs/ca-certificates.crt", 0o644, ca),
		dir("home", 0o755),
		home,
		dir("tmp", 0o1777),
	}
}

// binaryEntries lay the binary out, owned by root so its user cannot
// change it even on a writable root filesystem.
func binaryEntries(bin string) ([]entry, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	return []entry{
		dir("usr", 0o755),
		dir("usr/local", 0o755),
		dir("usr/local/bin", 0o755),
		file(binaryPath, 0o755, data),
	}, nil
}

// layer writes entries, in the order given, into a gzip-compressed OCI
// layer whose every header carries the same time and no host user names.
func layer(entries []entry, mtime time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		name := e.name
		if e.typeflag == tar.TypeDir {
			name += "/"
		}
		hdr := &tar.Header{Typeflag: e.typeflag, Name: name, Mode: e.mode, Uid: e.uid, Gid: e.uid, Size: int64(len(e.data)), ModTime: mtime, Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.BestCompression), tarball.WithCompressedCaching)
}
