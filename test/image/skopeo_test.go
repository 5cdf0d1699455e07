package image_test

import (
	"encoding/json"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// checkWithSkopeo reads the archive with containers/image (skopeo), what
// podman and CRI-O use: it picks this machine's platform and the other on
// request, and copies every blob of both.
func checkWithSkopeo(t *testing.T, archive string, digest v1.Hash, tag, dir string) {
	for _, arch := range []string{"amd64", "arm64"} {
		var got struct {
			Digest       string
			Architecture string
			Labels       map[string]string
		}
		out := run(t, "skopeo", "--override-os", "linux", "--override-arch", arch, "inspect", "oci-archive:"+archive)
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("skopeo inspect: %v\n%s", err, out)
		}
		if got.Digest != digest.String() || got.Architecture != arch || got.Labels["org.opencontainers.image.version"] != tag {
			t.Errorf("skopeo inspect for %s: digest %s, architecture %s, version %q; want %s, %s, %s", arch, got.Digest, got.Architecture, got.Labels["org.opencontainers.image.version"], digest, arch, tag)
		}
	}
	run(t, "skopeo", "copy", "--quiet", "--all", "oci-archive:"+archive+":"+tag, "oci:"+filepath.Join(dir, "copied")+":"+tag)
}
