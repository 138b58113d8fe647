// Command vcsim serves govmomi's simulated vCenter (the VPX model) on loopback over TLS for
// vcguard's tests against a vCenter simulator that vcguard did not write.
//
// It prints VCSIM_URL, VCSIM_THUMBPRINT (SHA-256 of the certificate) and VCSIM_CERT (a PEM file)
// on stdout, then serves until SIGINT or SIGTERM. With -calls FILE it appends the name of every
// SOAP method it receives to FILE, one per line (names only: no bodies, no credentials).
package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vmware/govmomi/simulator"
)

func main() {
	port := flag.Int("port", 0, "TCP port on 127.0.0.1 (0: any free port)")
	user := flag.String("user", "administrator@vsphere.local", "the only user name Login accepts")
	password := flag.String("password", "VMware1!", "that user's password")
	certFile := flag.String("cert", "", "write the server certificate (PEM) here (default: a temporary file)")
	calls := flag.String("calls", "", "append each received SOAP method name to this file")
	flag.Parse()

	if *calls != "" {
		recordCalls(*calls)
	}
	model := simulator.VPX()
	if err := model.Create(); err != nil {
		log.Fatalf("vcsim: model: %v", err)
	}
	certificate, err := loopbackCertificate()
	if err != nil {
		log.Fatalf("vcsim: certificate: %v", err)
	}
	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{certificate}}
	model.Service.Listen = &url.URL{
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)),
		User: url.UserPassword(*user, *password),
	}
	server := model.Service.NewServer()
	cert := server.Certificate()
	path := *certFile
	if path == "" {
		f, err := ioutil.TempFile("", "vcsim-cert-*.pem")
		if err != nil {
			log.Fatalf("vcsim: certificate file: %v", err)
		}
		path = f.Name()
		_ = f.Close()
		defer os.Remove(path)
	}
	pemText := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	if err := ioutil.WriteFile(path, pemText, 0o644); err != nil {
		log.Fatalf("vcsim: certificate file: %v", err)
	}
	sum := sha256.Sum256(cert.Raw)
	hexPairs := make([]string, len(sum))
	for i, b := range sum {
		hexPairs[i] = fmt.Sprintf("%02X", b)
	}
	u := *server.URL
	u.User = nil
	fmt.Printf("VCSIM_URL=%s\nVCSIM_THUMBPRINT=%s\nVCSIM_CERT=%s\n", u.String(), strings.Join(hexPairs, ":"), path)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	server.Close()
	model.Remove()
}

// loopbackCertificate makes a fresh self-signed P-256 certificate for 127.0.0.1, ::1 and
// localhost (the simulator's built-in test certificate is RSA-1024, which rustls, OpenSSL and
// Python refuse).
func loopbackCertificate() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	template := x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "vcsim"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, &template, &template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// recordCalls turns on the simulator's SOAP trace into a pipe and appends only the method name
// of each request (the first element inside the SOAP Body) to path.
func recordCalls(path string) {
	out, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		log.Fatalf("vcsim: calls file: %v", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		log.Fatalf("vcsim: pipe: %v", err)
	}
	simulator.Trace = true
	simulator.TraceFile = w
	method := regexp.MustCompile(`Body[^>]*>\s*<(?:[A-Za-z0-9_]+:)?([A-Za-z0-9_]+)`)
	go func() {
		lines := bufio.NewScanner(r)
		lines.Buffer(make([]byte, 64*1024), 64*1024*1024)
		var request strings.Builder
		inRequest := false
		flush := func() {
			if m := method.FindStringSubmatch(request.String()); m != nil {
				_, _ = fmt.Fprintln(out, m[1])
			}
			request.Reset()
		}
		for lines.Scan() {
			line := lines.Text()
			switch {
			case strings.HasPrefix(line, "Request: "):
				if inRequest {
					flush()
				}
				inRequest = true
				request.WriteString(strings.TrimPrefix(line, "Request: "))
			case strings.HasPrefix(line, "Response: "):
				if inRequest {
					flush()
				}
				inRequest = false
			case inRequest:
				request.WriteString(line)
			}
		}
	}()
}
