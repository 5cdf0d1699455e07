package egress

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
)

func TestNonGlobalAddressesAreRefused(t *testing.T) {
	for _, addr := range []string{
		"127.0.0.1", "10.1.2.3", "172.31.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
		"192.0.0.170", "198.18.0.1", "198.19.255.255", "240.0.0.1", "255.255.255.255", "224.0.0.1", "192.0.2.1",
		"::1", "::", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::7f00:1",
		"64:ff9b::a9fe:a9fe",  // NAT64 of 169.254.169.254
		"64:ff9b:1::a00:1",    // local-use NAT64 of 10.0.0.1
		"2002:7f00:1::1",      // 6to4 of 127.0.0.1
		"2001:0:4136:e378::1", // Teredo
		"fd00::1", "fe80::1", "fec0::1", "ff02::1", "2001:db8::1", "100::1",
	} {
		if !Refused(netip.MustParseAddr(addr), nil) {
			t.Errorf("%s should be refused", addr)
		}
	}
}

func TestGlobalAddressesPass(t *testing.T) {
	for _, addr := range []string{"8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001::200e", "::ffff:8.8.8.8"} {
		if Refused(netip.MustParseAddr(addr), nil) {
			t.Errorf("%s should pass", addr)
		}
	}
}

func TestAllowListOverrides(t *testing.T) {
	allowed := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	for _, addr := range []string{"10.9.9.9", "::ffff:10.9.9.9", "fd00::5"} {
		if Refused(netip.MustParseAddr(addr), allowed) {
			t.Errorf("%s is allow-listed", addr)
		}
	}
	if !Refused(netip.MustParseAddr("192.168.0.1"), allowed) {
		t.Error("an allow-list entry must not open other ranges")
	}
}

// The check runs on the dialled address: a name resolving to loopback is
// refused before a connection is made.
func TestDialerRefusesAfterResolution(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	d := &net.Dialer{Control: Control(nil)}
	if _, err := d.DialContext(context.Background(), "tcp", net.JoinHostPort("localhost", port)); !errors.Is(err, ErrRefused) {
		t.Fatalf("dialling localhost: %v", err)
	}
	d = &net.Dialer{Control: Control([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")})}
	c, err := d.DialContext(context.Background(), "tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("an allow-listed loopback: %v", err)
	}
	c.Close()
}
