// Command trivy-db writes a small Trivy vulnerability database (schema 2,
// the layout of aquasecurity/trivy-db that Trivy 0.59.1 reads) from a JSON
// spec on stdin, so tests can run the real Trivy offline against advisories
// they choose.
//
// Usage: trivy-db CACHE_DIR < spec.json
//
// Writes CACHE_DIR/db/trivy.db (BoltDB) and CACHE_DIR/db/metadata.json;
// pass CACHE_DIR to `trivy --cache-dir` with `--skip-db-update`.
//
// The spec (unknown fields are an error):
//
//	{
//	  "advisories": {
//	    "debian 12": {                      // the platform bucket Trivy reads
//	      "openssl": {                      // the SOURCE package name
//	        "CVE-2099-0001": {"status": "affected"},
//	        "CVE-2099-0002": {"fixed_version": "3.0.99-1~deb12u1"}
//	      }
//	    }
//	  },
//	  "vulnerabilities": {
//	    "CVE-2099-0001": {"severity": "HIGH", "title": "…", "description": "…"}
//	  },
//	  "data_sources": {                     // optional
//	    "debian 12": {"ID": "debian", "Name": "…", "URL": "…"}
//	  }
//	}
//
// An advisory has exactly one of "status" (affected, will_not_fix,
// fix_deferred, end_of_life, under_investigation: no fix, always reported)
// or "fixed_version" (reported when the installed source version is lower);
// it may add a package-specific "severity". A "debian N" platform without a
// data source gets the Debian Security Tracker's. A vulnerability's
// severity is stored both as its Severity and as the "nvd" vendor severity.
//
// GOPATH mode, the standard library and Debian's
// golang-github-coreos-bbolt-dev only:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o trivy-db main.go
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

type spec struct {
	Advisories      map[string]map[string]map[string]advisory `json:"advisories"`
	Vulnerabilities map[string]vulnerability                  `json:"vulnerabilities"`
	DataSources     map[string]dataSource                     `json:"data_sources"`
}

type advisory struct {
	Status       string `json:"status"`
	FixedVersion string `json:"fixed_version"`
	Severity     string `json:"severity"`
}

type vulnerability struct {
	Severity    string   `json:"severity"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	References  []string `json:"references"`
}

type dataSource struct {
	ID   string `json:"ID"`
	Name string `json:"Name"`
	URL  string `json:"URL"`
}

// What trivy-db stores: an advisory with an integer status (omitted for
// unknown) and an integer severity (omitted for unknown).
type dbAdvisory struct {
	FixedVersion string `json:"FixedVersion,omitempty"`
	Severity     int    `json:"Severity,omitempty"`
	Status       int    `json:"Status,omitempty"`
}

type dbVulnerability struct {
	Title          string         `json:"Title,omitempty"`
	Description    string         `json:"Description,omitempty"`
	Severity       string         `json:"Severity,omitempty"`
	VendorSeverity map[string]int `json:"VendorSeverity,omitempty"`
	References     []string       `json:"References,omitempty"`
}

type metadata struct {
	Version      int       `json:"Version"`
	NextUpdate   time.Time `json:"NextUpdate"`
	UpdatedAt    time.Time `json:"UpdatedAt"`
	DownloadedAt time.Time `json:"DownloadedAt"`
}

// trivy-db's types.Statuses, in order (the index is what is stored).
var statuses = []string{"unknown", "not_affected", "affected", "fixed",
	"under_investigation", "will_not_fix", "fix_deferred", "end_of_life"}

// trivy-db's types.SeverityNames, in order.
var severities = []string{"UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"}

func index(list []string, name string) int {
	for i, s := range list {
		if s == name {
			return i
		}
	}
	return -1
}

func severity(name string) (int, error) {
	if name == "" {
		return 0, nil
	}
	i := index(severities, name)
	if i < 0 {
		return 0, fmt.Errorf("unknown severity %q (want one of %s)", name, strings.Join(severities, ", "))
	}
	return i, nil
}

func put(b *bolt.Bucket, key string, value interface{}) error {
	data, err := json.Marshal(value)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), data)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func write(s *spec, dir string) error {
	dbDir := filepath.Join(dir, "db")
	if err := os.MkdirAll(dbDir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dbDir, "trivy.db")
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	db, err := bolt.Open(path, 0o644, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		sources, err := tx.CreateBucketIfNotExists([]byte("data-source"))
		if err != nil {
			return err
		}
		for _, platform := range sortedKeys(s.Advisories) {
			root, err := tx.CreateBucketIfNotExists([]byte(platform))
			if err != nil {
				return err
			}
			for _, pkg := range sortedKeys(s.Advisories[platform]) {
				bucket, err := root.CreateBucketIfNotExists([]byte(pkg))
				if err != nil {
					return err
				}
				for _, id := range sortedKeys(s.Advisories[platform][pkg]) {
					a := s.Advisories[platform][pkg][id]
					where := fmt.Sprintf("advisory %s / %s / %s", platform, pkg, id)
					if (a.Status == "") == (a.FixedVersion == "") {
						return fmt.Errorf("%s: give exactly one of status or fixed_version", where)
					}
					var stored dbAdvisory
					stored.FixedVersion = a.FixedVersion
					if a.Status != "" {
						stored.Status = index(statuses, a.Status)
						if stored.Status < 0 || a.Status == "unknown" || a.Status == "fixed" || a.Status == "not_affected" {
							return fmt.Errorf("%s: status %q is not an unfixed status", where, a.Status)
						}
					}
					if stored.Severity, err = severity(a.Severity); err != nil {
						return fmt.Errorf("%s: %w", where, err)
					}
					if err := put(bucket, id, stored); err != nil {
						return err
					}
				}
			}
			ds, ok := s.DataSources[platform]
			if !ok && strings.HasPrefix(platform, "debian ") {
				ds = dataSource{ID: "debian", Name: "Debian Security Tracker",
					URL: "https://salsa.debian.org/security-tracker-team/security-tracker"}
				ok = true
			}
			if ok {
				if err := put(sources, platform, ds); err != nil {
					return err
				}
			}
		}
		vulns, err := tx.CreateBucketIfNotExists([]byte("vulnerability"))
		if err != nil {
			return err
		}
		for _, id := range sortedKeys(s.Vulnerabilities) {
			v := s.Vulnerabilities[id]
			stored := dbVulnerability{Title: v.Title, Description: v.Description,
				Severity: v.Severity, References: v.References}
			if v.Severity != "" {
				n, err := severity(v.Severity)
				if err != nil {
					return fmt.Errorf("vulnerability %s: %w", id, err)
				}
				stored.VendorSeverity = map[string]int{"nvd": n}
			}
			if err := put(vulns, id, stored); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)
	meta, err := json.Marshal(metadata{
		Version:      2,
		NextUpdate:   time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC),
		UpdatedAt:    now,
		DownloadedAt: now,
	})
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dbDir, "metadata.json"), meta, 0o644)
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: trivy-db CACHE_DIR < spec.json")
		os.Exit(2)
	}
	var s spec
	input, err := io.ReadAll(os.Stdin)
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(input))
		dec.DisallowUnknownFields()
		err = dec.Decode(&s)
	}
	if err == nil {
		err = write(&s, os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "trivy-db:", err)
		os.Exit(1)
	}
}
