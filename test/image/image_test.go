package image_test

import (
	"bytes"
	"crypto/x509"
	"debug/elf"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// TestImage runs make image twice, as a user does: once to an archive and
// once pushing to a registry. Both must give the same digest, and the
// archive must hold what the chart's pods need to start.
func TestImage(t *testing.T) {
	imageName, tag := makeVar(t, "IMAGE_NAME"), makeVar(t, "IMAGE_TAG")
	dir := t.TempDir()
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	repo := strings.TrimPrefix(reg.URL, "http://") + "/team"

	archive, pushedArchive := filepath.Join(dir, "image.oci.tar"), filepath.Join(dir, "pushed.oci.tar")
	start := time.Now()
	t.Log(run(t, "make", "--no-print-directory", "image", "IMAGE_ARCHIVE="+archive))
	t.Logf("make image took %s", time.Since(start).Round(time.Second))
	t.Log(run(t, "make", "--no-print-directory", "image", "IMAGE_ARCHIVE="+pushedArchive, "IMAGE_REGISTRY="+repo))

	top, idx := openArchive(t, archive, dir)
	digest, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("layout", func(t *testing.T) {
		// Every blob present, with the digest and size its descriptor says.
		if err := validate.Index(idx); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"io.containerd.image.name": "docker.io/library/" + imageName + ":" + tag, "org.opencontainers.image.ref.name": tag}
		for k, v := range want {
			if top.Annotations[k] != v {
				t.Errorf("index.json annotation %s = %q, want %q", k, top.Annotations[k], v)
			}
		}
		if top.MediaType != types.OCIImageIndex {
			t.Errorf("index.json points at a %s, want an OCI image index", top.MediaType)
		}
	})
	t.Run("same digest from the same commit", func(t *testing.T) {
		_, again := openArchive(t, pushedArchive, t.TempDir())
		if d, _ := again.Digest(); d != digest {
			t.Errorf("second build %s, first %s (did the source change between the two?)", d, digest)
		}
	})
	t.Run("pushed", func(t *testing.T) {
		ref, err := name.ParseReference(repo + "/" + imageName + ":" + tag)
		if err != nil {
			t.Fatal(err)
		}
		got, err := remote.Index(ref)
		if err != nil {
			t.Fatal(err)
		}
		if d, _ := got.Digest(); d != digest {
			t.Errorf("registry has %s at %s, built %s", d, ref, digest)
		}
		if err := validate.Index(got); err != nil {
			t.Errorf("pushed index incomplete: %v", err)
		}
	})

	manifest, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, desc := range manifest.Manifests {
		if desc.Platform == nil {
			t.Fatalf("manifest %s has no platform", desc.Digest)
		}
		platform := desc.Platform.OS + "/" + desc.Platform.Architecture
		platforms = append(platforms, platform)
		img, err := idx.Image(desc.Digest)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(platform, func(t *testing.T) { checkImage(t, img, desc.Platform, tag) })
	}
	if got := strings.Join(platforms, ","); got != "linux/amd64,linux/arm64" {
		t.Errorf("index platforms %s, want linux/amd64,linux/arm64", got)
	}
	if haveContainerd() {
		t.Run("containerd", func(t *testing.T) { checkWithContainerd(t, archive, "docker.io/library/"+imageName+":"+tag) })
	} else {
		t.Log("no containerd, ctr and runc as root: the image was not run")
	}
	if _, err := exec.LookPath("skopeo"); err == nil {
		t.Run("skopeo", func(t *testing.T) { checkWithSkopeo(t, archive, digest, tag, dir) })
	} else {
		t.Log("skopeo not installed (apt-get install skopeo): archive not checked with it")
	}
}

// openArchive unpacks an OCI archive into dir/<name> and returns index.json's
// one descriptor and the image index it points at.
func openArchive(t *testing.T, archive, dir string) (v1.Descriptor, v1.ImageIndex) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	unpacked := filepath.Join(dir, filepath.Base(archive)+".d")
	for name, file := range readTar(t, f) {
		path := filepath.Join(unpacked, name)
		if file.hdr.Typeflag == '5' {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, file.data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	outer, err := layout.ImageIndexFromPath(unpacked)
	if err != nil {
		t.Fatalf("%s is no OCI layout: %v", archive, err)
	}
	im, err := outer.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index.json lists %d manifests, want 1 (the image index)", len(im.Manifests))
	}
	idx, err := outer.ImageIndex(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return im.Manifests[0], idx
}

// checkImage checks one platform's image: its config runs the binary as
// the non-root user, its files are the user, the CA bundle and a static
// binary of that platform, and (on amd64, this machine's) it answers --help.
func checkImage(t *testing.T, img v1.Image, platform *v1.Platform, tag string) {
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OS != platform.OS || cfg.Architecture != platform.Architecture {
		t.Errorf("config says %s/%s", cfg.OS, cfg.Architecture)
	}
	if want := strconv.Itoa(nonroot) + ":" + strconv.Itoa(nonroot); cfg.Config.User != want {
		t.Errorf("config user %q, want %q", cfg.Config.User, want)
	}
	if len(cfg.Config.Entrypoint) != 1 || cfg.Config.Entrypoint[0] != entrypoint {
		t.Errorf("entrypoint %q, want [%s]", cfg.Config.Entrypoint, entrypoint)
	}
	revision := strings.TrimSpace(run(t, "git", "rev-parse", "HEAD"))
	commitTime, err := strconv.ParseInt(strings.TrimSpace(run(t, "git", "log", "-1", "--format=%ct", "HEAD")), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Unix(commitTime, 0).UTC()
	for k, want := range map[string]string{"org.opencontainers.image.version": tag, "org.opencontainers.image.revision": revision, "org.opencontainers.image.created": created.Format(time.RFC3339), "org.opencontainers.image.title": "integration-operator"} {
		if got := cfg.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	if !cfg.Created.Equal(created) {
		t.Errorf("created %s, want the commit's time %s", cfg.Created, created)
	}

	rc := mutate.Extract(img)
	defer rc.Close()
	files := readTar(t, rc)
	for path, f := range files {
		if !f.hdr.ModTime.Equal(created) {
			t.Errorf("%s: mtime %s, want the commit's time %s", path, f.hdr.ModTime, created)
		}
	}
	contains := func(path, line string) {
		if !bytes.Contains(files[path].data, []byte(line)) {
			t.Errorf("%s lacks %q:\n%s", path, line, files[path].data)
		}
	}
	contains("etc/passwd", "\nnonroot:x:65532:65532:")
	contains("etc/group", "\nnonroot:x:65532:\n")

	ca := files["etc/ssl/certs/ca-certificates.crt"].data
	if host, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt"); err == nil && !bytes.Equal(ca, host) {
		t.Errorf("CA bundle (%d bytes) differs from the build host's (%d bytes)", len(ca), len(host))
	}
	if pool := x509.NewCertPool(); !pool.AppendCertsFromPEM(ca) {
		t.Errorf("CA bundle (%d bytes) holds no certificate", len(ca))
	}

	bin, ok := files[strings.TrimPrefix(entrypoint, "/")]
	if !ok {
		t.Fatalf("no %s in the layers", entrypoint)
	}
	if bin.hdr.Mode&0o777 != 0o755 || bin.hdr.Uid != 0 {
		t.Errorf("%s: mode %o uid %d, want 755 owned by root (its user cannot change it)", entrypoint, bin.hdr.Mode, bin.hdr.Uid)
	}
	checkStatic(t, bin.data, platform.Architecture)
	if platform.Architecture == "amd64" {
		checkHelp(t, bin.data)
	}
}

// checkStatic checks the binary is for arch and needs no dynamic loader:
// the image has no libc.
func checkStatic(t *testing.T, data []byte, arch string) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("not an ELF binary: %v", err)
	}
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if f.Machine != want {
		t.Errorf("binary for %s, want %s", f.Machine, want)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("binary is dynamically linked (has an interpreter)")
		}
	}
}

// checkHelp runs the image's binary, as extracted, with --help.
func checkHelp(t *testing.T, data []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "integration-operator")
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path, "--help")
	cmd.Env = []string{} // nothing from this machine's environment
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	for _, sub := range []string{"manager", "dispatcher", "credentials-api", "migrate"} {
		if !bytes.Contains(out, []byte("\n  "+sub+" ")) {
			t.Errorf("--help lists no %s subcommand:\n%s", sub, out)
		}
	}
}
