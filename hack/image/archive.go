package main

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// writeArchive writes idx as an OCI image layout in a tar (what skopeo
// calls oci-archive, podman load and ctr images import read), naming it
// ref the way buildkit does: io.containerd.image.name, which containerd
// and podman use, and the tag as org.opencontainers.image.ref.name, which
// skopeo's oci-archive:FILE:TAG selects. Entries are sorted and stamped
// with mtime, so the same index gives the same bytes. It returns the size.
func writeArchive(path string, idx v1.ImageIndex, ref, tag string, mtime time.Time) (int64, error) {
	blobs, err := indexBlobs(idx)
	if err != nil {
		return 0, err
	}
	top, err := indexDescriptor(idx, ref, tag)
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return 0, err
	}
	tmp := path + ".partial"
	f, err := os.Create(tmp)
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp)
	defer f.Close()
	tw := tar.NewWriter(f)
	put := func(name string, size int64, r io.Reader) error {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, ModTime: mtime, Format: tar.FormatUSTAR}
		if r == nil {
			hdr.Typeflag, hdr.Mode = tar.TypeDir, 0o755
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if r == nil {
			return nil
		}
		n, err := io.Copy(tw, r)
		if err == nil && n != size {
			err = fmt.Errorf("%s: wrote %d bytes, want %d", name, n, size)
		}
		return err
	}
	layout := []byte(`{"imageLayoutVersion":"1.0.0"}`)
	for _, step := range []func() error{
		func() error { return put("oci-layout", int64(len(layout)), bytesReader(layout)) },
		func() error { return put("index.json", int64(len(top)), bytesReader(top)) },
		func() error { return put("blobs/", 0, nil) },
		func() error { return put("blobs/sha256/", 0, nil) },
	} {
		if err := step(); err != nil {
			return 0, err
		}
	}
	for _, b := range blobs {
		rc, err := b.open()
		if err != nil {
			return 0, err
		}
		err = put("blobs/sha256/"+b.digest.Hex, b.size, rc)
		rc.Close()
		if err != nil {
			return 0, err
		}
	}
	if err := tw.Close(); err != nil {
		return 0, err
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	return size, os.Rename(tmp, path)
}

// indexDescriptor is the layout's index.json: one entry, the image index.
func indexDescriptor(idx v1.ImageIndex, ref, tag string) ([]byte, error) {
	desc, err := descriptorOf(idx)
	if err != nil {
		return nil, err
	}
	desc.Annotations = map[string]string{"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": tag}
	return json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{desc}})
}

func descriptorOf(idx v1.ImageIndex) (v1.Descriptor, error) {
	digest, err := idx.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	size, err := idx.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: types.OCIImageIndex, Digest: digest, Size: size}, nil
}
