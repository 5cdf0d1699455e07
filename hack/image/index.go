package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// buildIndex builds one image per platform and the OCI index of them.
func buildIndex(ctx context.Context, o options, src source, ca caBundle) (v1.ImageIndex, error) {
	tmp, err := os.MkdirTemp("", "image-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	base, err := layer(baseEntries(ca.data), src.time)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{
		"org.opencontainers.image.title":       o.name,
		"org.opencontainers.image.description": "Webhooks, API credentials and marketplace connectors for the commerce platform: manager, dispatcher and credentials API in one binary",
		"org.opencontainers.image.version":     o.tag,
		"org.opencontainers.image.revision":    src.revision,
		"org.opencontainers.image.created":     src.time.Format("2006-01-02T15:04:05Z"),
		"org.opencontainers.image.source":      "https://github.com/ss3dev/integration-operator",
		"org.opencontainers.image.url":         "https://github.com/ss3dev/integration-operator",
		"org.opencontainers.image.vendor":      "ss3dev",
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, platform := range o.platforms {
		bin, err := buildBinary(ctx, o.pkg, platform, tmp)
		if err != nil {
			return nil, err
		}
		img, err := platformImage(platform, bin, base, ca, src, labels)
		if err != nil {
			return nil, err
		}
		goos, goarch, _ := strings.Cut(platform, "/")
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: goos, Architecture: goarch}}})
	}
	return mutate.Annotations(idx, labels).(v1.ImageIndex), nil
}

// platformImage is the image of one platform: the shared base layer, the
// binary's layer and a config that runs the binary as the non-root user.
func platformImage(platform, bin string, base v1.Layer, ca caBundle, src source, labels map[string]string) (v1.Image, error) {
	entries, err := binaryEntries(bin)
	if err != nil {
		return nil, err
	}
	app, err := layer(entries, src.time)
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: src.time}
	img, err := mutate.Append(mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1),
		mutate.Addendum{Layer: base, History: v1.History{Created: created, CreatedBy: "hack/image: /etc/passwd, /etc/group (nonroot 65532), CA bundle from " + ca.origin}},
		mutate.Addendum{Layer: app, History: v1.History{Created: created, CreatedBy: fmt.Sprintf("hack/image: /%s, %s CGO_ENABLED=0 -trimpath", binaryPath, src.goVersion)}},
	)
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, _ = strings.Cut(platform, "/")
	cfg.Created = created
	cfg.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", uid, uid),
		Entrypoint: []string{"/" + binaryPath},
		Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/home/nonroot"},
		WorkingDir: "/",
		Labels:     labels,
	}
	return mutate.ConfigFile(img, cfg)
}
