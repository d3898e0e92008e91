package service

import "testing"

func TestMicroVersionIsSemVer(t *testing.T) {
	for in, want := range map[string]string{
		"v1.2.3": "1.2.3", "1.2.3-rc.1": "1.2.3-rc.1", "dev": "0.0.0+dev", "3a6b55c": "0.0.0+3a6b55c",
		"v0.4.0-12-g3a6b55c-dirty": "0.4.0-12-g3a6b55c-dirty", "": "0.0.0+dev", "a/b c": "0.0.0+a-b-c", "1.2.3-01": "0.0.0+1-2-3-01", "..": "0.0.0+dev",
	} {
		got := microVersion(in)
		if got != want || !semverish.MatchString(got) {
			t.Errorf("microVersion(%q) = %q, want %q", in, got, want)
		}
	}
}
