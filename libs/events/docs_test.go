package events_test

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"cryptopill.dev/jobs/libs/events"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
)

// docsPath is docs/events.md from this package's directory.
const docsPath = "../../docs/events.md"

// TestDocsMatchCode keeps docs/events.md true to the code: the stream and consumer tables match
// the declared topology, every event type has a section, and every JSON example decodes
// (strictly: no unknown fields) as the event of its section.
func TestDocsMatchCode(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(docsPath)
	require.NoError(t, err)
	doc := string(raw)
	rows := tableRows(doc)
	topo := events.NewTopology(events.TopologyConfig{})

	payloads := map[string]string{
		events.StreamTicks: "Tick", events.StreamUniverse: "UniverseChanged", events.StreamCDC: "RowChange",
		events.StreamJobs: "JobLifecycle", events.StreamImports: "MovesImported", events.StreamDLQ: "DeadLetter",
	}
	for _, s := range topo.Streams {
		users := strings.Join(s.Users, ", ")
		if s.UsersCreate {
			users += " (create if absent)"
		}
		want := []string{"`" + s.Name + "`", "`" + strings.Join(s.Subjects, "`, `") + "`", payloads[s.Name], human(s.MaxAge), human(s.Duplicates),
			s.Owner, users}
		require.Equal(t, want, rows["`"+s.Name+"`"], "streams table row of %s", s.Name)
	}
	for _, b := range topo.Buckets {
		want := []string{"`" + b.StreamName() + "`", "`$O." + b.Bucket + ".C.>`, `$O." + b.Bucket + ".M.>`",
			fmt.Sprintf("Object Store bucket `%s` (claim-checked payloads, max %d GiB)", b.Bucket, b.MaxBytes>>30),
			human(b.TTL), "none", b.Owner, strings.Join(b.Users, ", ")}
		require.Equal(t, want, rows["`"+b.StreamName()+"`"], "streams table row of bucket %s", b.Bucket)
	}

	deliver := map[jetstream.DeliverPolicy]string{
		jetstream.DeliverAllPolicy: "all", jetstream.DeliverNewPolicy: "new", jetstream.DeliverLastPolicy: "last",
	}
	for _, c := range topo.Consumers {
		cfg := c.Config
		filters := cfg.FilterSubjects
		if cfg.FilterSubject != "" {
			filters = []string{cfg.FilterSubject}
		}
		var backoff []string
		for _, d := range cfg.BackOff {
			backoff = append(backoff, human(d))
		}
		want := []string{
			"`" + cfg.Durable + "`", "`" + c.Stream + "`", "`" + strings.Join(filters, "`, `") + "`",
			deliver[cfg.DeliverPolicy], strings.Join(backoff, ", "), fmt.Sprint(cfg.MaxDeliver), cfg.Metadata[events.MetadataAttempts],
			fmt.Sprint(cfg.MaxAckPending), c.Owner,
		}
		require.Equal(t, want, rows["`"+cfg.Durable+"`"], "consumers table row of %s", cfg.Durable)
	}

	// Each "### `subject` — Message" section: its ce-type is named, its JSON examples decode.
	byName := map[string]string{}
	for _, typ := range events.Types() {
		m, err := events.NewMessage(typ)
		require.NoError(t, err)
		byName[string(m.ProtoReflect().Descriptor().Name())] = typ
	}
	heading := regexp.MustCompile("(?m)^### `[^`]+` — (\\w+)$")
	sections := heading.FindAllStringSubmatchIndex(doc, -1)
	seen := map[string]bool{}
	for i, loc := range sections {
		name := doc[loc[2]:loc[3]]
		typ, ok := byName[name]
		require.True(t, ok, "section for unknown message %s", name)
		end := len(doc)
		if i+1 < len(sections) {
			end = sections[i+1][0]
		}
		body := doc[loc[1]:end]
		require.Contains(t, body, "**ce-type** `"+typ+"`", name)
		examples := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllStringSubmatch(body, -1)
		require.NotEmpty(t, examples, "section %s has a JSON example", name)
		for _, ex := range examples {
			m, _ := events.NewMessage(typ)
			require.NoError(t, protojson.Unmarshal([]byte(ex[1]), m), "example of %s", name)
		}
		seen[typ] = true
	}
	for _, typ := range events.Types() {
		require.True(t, seen[typ], "docs/events.md has a section for %s", typ)
	}
}

// tableRows maps the first cell of every markdown table row to its cells.
func tableRows(doc string) map[string][]string {
	rows := map[string][]string{}
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		var cells []string
		for _, c := range strings.Split(strings.Trim(line, "|"), "|") {
			cells = append(cells, strings.TrimSpace(c))
		}
		rows[cells[0]] = cells
	}
	return rows
}

// human prints a duration the way the docs do: 30d, 24h, 5m, 10s.
func human(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0 && d >= 48*time.Hour:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	default:
		return d.String()
	}
}
