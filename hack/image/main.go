// Command image builds the integration-operator container image without a
// Docker daemon or root: it cross-compiles one static binary per platform,
// lays it with a passwd/group entry for the non-root user and the build
// host's CA bundle into layers with fixed timestamps, writes an OCI image
// index (linux/amd64 and linux/arm64) as an OCI layout in a tar, and pushes
// it to a registry when one is given. The same commit and toolchain give
// the same digest.
//
//	go run ./hack/image --name integration-operator --tag 0.1.0 \
//	    --out bin/integration-operator-0.1.0.oci.tar [--registry registry.example:5000/team]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("image: ")
	var o options
	flag.StringVar(&o.name, "name", "integration-operator", "image name (the last path element of the repository)")
	flag.StringVar(&o.tag, "tag", "", "image tag, also the org.opencontainers.image.version label (required)")
	flag.StringVar(&o.registry, "registry", "", "push to REGISTRY/NAME:TAG when set (e.g. registry.example:5000/team); credentials from the default keychain (~/.docker/config.json)")
	flag.BoolVar(&o.insecure, "insecure", false, "push over plain HTTP (localhost and 127.0.0.1 use it anyway)")
	flag.StringVar(&o.out, "out", "", "OCI archive to write (default bin/NAME-TAG.oci.tar)")
	flag.StringVar(&o.pkg, "package", "./cmd/integration-operator", "Go package of the binary")
	platforms := flag.String("platforms", "linux/amd64,linux/arm64", "comma-separated OS/ARCH list")
	flag.StringVar(&o.caBundle, "ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "CA bundle copied into the image (installed from Debian's ca-certificates when missing)")
	flag.Parse()
	if o.tag == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	o.platforms = strings.Split(*platforms, ",")
	if o.out == "" {
		o.out = fmt.Sprintf("bin/%s-%s.oci.tar", o.name, o.tag)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o); err != nil {
		log.Fatal(err)
	}
}

type options struct {
	name, tag, registry, out, pkg, caBundle string
	insecure                                bool
	platforms                               []string
}

// reference is the image's full name: what the archive is named on
// import and where it is pushed. Without a registry it is the name the
// kubelet asks for when a pod says "integration-operator:TAG".
func (o options) reference() string {
	if o.registry == "" {
		return "docker.io/library/" + o.name + ":" + o.tag
	}
	return strings.TrimSuffix(o.registry, "/") + "/" + o.name + ":" + o.tag
}

func run(ctx context.Context, o options) error {
	src, err := describeSource(ctx)
	if err != nil {
		return err
	}
	ca, err := readCABundle(ctx, o.caBundle)
	if err != nil {
		return err
	}
	idx, err := buildIndex(ctx, o, src, ca)
	if err != nil {
		return err
	}
	size, err := writeArchive(o.out, idx, o.reference(), o.tag, src.time)
	if err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s: %s@%s (%s, %.1f MiB)\n", o.out, o.reference(), digest, strings.Join(o.platforms, ", "), float64(size)/(1<<20))
	if o.registry == "" {
		return nil
	}
	if err := push(ctx, o.reference(), o.insecure, idx); err != nil {
		return err
	}
	fmt.Printf("pushed %s@%s\n", o.reference(), digest)
	return nil
}
