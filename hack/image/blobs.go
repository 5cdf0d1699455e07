package main

import (
	"bytes"
	"io"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// blob is one content-addressed file of the layout.
type blob struct {
	digest v1.Hash
	size   int64
	open   func() (io.ReadCloser, error)
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func rawBlob(raw []byte, digest v1.Hash) blob {
	return blob{digest: digest, size: int64(len(raw)), open: func() (io.ReadCloser, error) { return io.NopCloser(bytesReader(raw)), nil }}
}

// indexBlobs lists every blob idx refers to (its manifest, the images'
// manifests, configs and layers) once each, sorted by digest.
func indexBlobs(idx v1.ImageIndex) ([]blob, error) {
	seen := map[v1.Hash]blob{}
	raw, err := idx.RawManifest()
	if err != nil {
		return nil, err
	}
	digest, err := idx.Digest()
	if err != nil {
		return nil, err
	}
	seen[digest] = rawBlob(raw, digest)
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, desc := range im.Manifests {
		img, err := idx.Image(desc.Digest)
		if err != nil {
			return nil, err
		}
		if err := imageBlobs(img, seen); err != nil {
			return nil, err
		}
	}
	out := make([]blob, 0, len(seen))
	for _, b := range seen {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].digest.String() < out[j].digest.String() })
	return out, nil
}

func imageBlobs(img v1.Image, seen map[v1.Hash]blob) error {
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	seen[digest] = rawBlob(raw, digest)
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	name, err := img.ConfigName()
	if err != nil {
		return err
	}
	seen[name] = rawBlob(cfg, name)
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		size, err := l.Size()
		if err != nil {
			return err
		}
		seen[d] = blob{digest: d, size: size, open: l.Compressed}
	}
	return nil
}
