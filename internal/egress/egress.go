// Package egress decides which IP addresses outbound deliveries may dial:
// only globally reachable ones, unless an operator allow-lists a network.
// A webhook target is chosen by whoever may create a subscription, so
// without this check it could reach the cluster's own services, a cloud
// metadata endpoint or the pod network.
package egress

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
)

// ErrRefused: the address dialled is not globally reachable and no
// allow-list entry covers it.
var ErrRefused = errors.New("destination address refused: loopback, private, link-local, metadata, " +
	"translated (NAT64, 6to4, Teredo) or reserved addresses need an allow-list entry")

// nonGlobal are the special-purpose ranges of the IANA IPv4 and IPv6
// registries that are not globally reachable, plus the translation and
// tunnelling ranges (NAT64, 6to4, Teredo) that embed an IPv4 address a
// relay would reach on our behalf, private ones included.
var nonGlobal = prefixes(
	// IPv4
	"0.0.0.0/8",       // "this network"
	"10.0.0.0/8",      // private
	"100.64.0.0/10",   // carrier-grade NAT, shared address space
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local, cloud metadata
	"172.16.0.0/12",   // private
	"192.0.0.0/24",    // IETF protocol assignments
	"192.0.2.0/24",    // documentation
	"192.88.99.0/24",  // 6to4 relay anycast
	"192.168.0.0/16",  // private
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // documentation
	"203.0.113.0/24",  // documentation
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, broadcast
	// IPv6
	"::/96",          // unspecified, loopback, IPv4-compatible
	"::ffff:0:0/96",  // IPv4-mapped (checked again as IPv4 after unmapping)
	"64:ff9b::/96",   // NAT64, well-known prefix
	"64:ff9b:1::/48", // NAT64, local use
	"100::/64",       // discard
	"2001::/23",      // IETF protocol assignments, Teredo (2001::/32) among them
	"2001:db8::/32",  // documentation
	"2002::/16",      // 6to4
	"3fff::/20",      // documentation
	"5f00::/16",      // segment routing SIDs
	"fc00::/7",       // unique local
	"fe80::/10",      // link-local
	"fec0::/10",      // site-local (deprecated)
	"ff00::/8",       // multicast
)

func prefixes(cidrs ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(cidrs))
	for i, c := range cidrs {
		out[i] = netip.MustParsePrefix(c)
	}
	return out
}

// Refused reports whether ip may not be dialled: it is not globally
// reachable and no prefix in allowed covers it.
func Refused(ip netip.Addr, allowed []netip.Prefix) bool {
	ip = ip.Unmap()
	for _, p := range allowed {
		if p.Contains(ip) {
			return false
		}
	}
	if !ip.IsValid() {
		return true
	}
	for _, p := range nonGlobal {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Control is a net.Dialer Control function refusing what Refused refuses.
// It runs after name resolution, on the address actually dialled, so DNS
// tricks (rebinding, a name for 127.0.0.1) cannot route around it.
func Control(allowed []netip.Prefix) func(network, address string, _ syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return err
		}
		if Refused(ip, allowed) {
			return ErrRefused
		}
		return nil
	}
}
