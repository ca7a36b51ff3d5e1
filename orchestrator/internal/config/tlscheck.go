package config

import (
	"crypto/tls"
	"crypto/x509"
	"time"
)

// CertMinValidity is how long check-config wants the TLS certificate to stay
// valid: two weeks leave time to renew it before students see a warning.
const CertMinValidity = 14 * 24 * time.Hour

// CheckCertificate loads tls.cert_file and tls.key_file the way the server
// does and reports a key that does not belong to the certificate, and a
// certificate that is not valid yet, has expired or expires within
// minValidity of now. It checks nothing when TLS is off or a file is
// missing (Validate reports that).
func (c Config) CheckCertificate(now time.Time, minValidity time.Duration) Errors {
	if c.TLS.CertFile == "" || c.TLS.KeyFile == "" {
		return nil
	}
	v := &checker{}
	pair, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
	if err != nil {
		v.add("tls.key_file", "%s with %s cannot serve HTTPS: %v; the key must be the certificate's own private key, both PEM", c.TLS.KeyFile, c.TLS.CertFile, err)
		return v.errs
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		v.add("tls.cert_file", "%s: %v", c.TLS.CertFile, err)
		return v.errs
	}
	const day = "2006-01-02 15:04 MST"
	switch left := leaf.NotAfter.Sub(now); {
	case now.Before(leaf.NotBefore):
		v.add("tls.cert_file", "%s is not valid before %s; check the clock, or use the certificate in force", c.TLS.CertFile, leaf.NotBefore.UTC().Format(day))
	case left <= 0:
		v.add("tls.cert_file", "%s expired on %s; renew it", c.TLS.CertFile, leaf.NotAfter.UTC().Format(day))
	case left < minValidity:
		v.add("tls.cert_file", "%s expires on %s, in %d days (less than %d); renew it now", c.TLS.CertFile,
			leaf.NotAfter.UTC().Format(day), int(left.Hours()/24), int(minValidity.Hours()/24))
	}
	return v.errs
}
