package relay

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Malformed pgoutput messages the fuzzer builds: each is an error naming what was wrong, where
// pglogrepl.Parse panics (index out of range), allocates what the message claims (a 4 GiB
// column, 16 GiB of TRUNCATE relation ids) or returns what the decoder would turn into an event
// consumers cannot decode.
func TestParseMessageRefusesMalformedMessages(t *testing.T) {
	t.Parallel()
	rel := encRelation(7, "cin_aux", "rt_session", seedCols, 1)
	for name, c := range map[string]struct {
		data []byte
		want string
	}{
		"empty":                 {nil, "empty pgoutput message"},
		"relation truncated":    {rel[:len(rel)-3], "pgoutput Relation message ("},
		"relation no columns":   {rel[:26], "truncated"},
		"insert truncated":      {encInsert(7, seedRow)[:12], "truncated"},
		"insert column too big": {[]byte{'I', 0, 0, 0, 7, 'N', 0, 1, 't', 0xff, 0xff, 0xff, 0xff, 'x'}, "4294967295 bytes, 1 sent"},
		"update old tuple cut":  {encUpdate(7, 'O', seedRow, seedRow)[:20], "tuple column 1 of 5: 25 bytes, 0 sent"},
		"update new tuple cut":  {encUpdate(7, 'K', seedRow, seedRow)[:len(encUpdate(7, 'K', seedRow, seedRow))-2], "bytes"},
		"delete truncated":      {[]byte{'D', 0, 0, 0, 7, 'K', 0, 3, 'n'}, "tuple column 1 of 3: truncated"},
		"truncate count":        {[]byte{'T', 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 7}, "4294967295 relations in 4 bytes"},
		"empty table name":      {encRelation(7, "s", "", []string{"a"}, 0), `relation "s"."": name is not a subject token`},
		"dotted schema":         {encRelation(7, "a.b", "t", []string{"a"}, 0), "name is not a subject token"},
		"duplicate column":      {encRelation(7, "s", "t", []string{"a", "b", "a"}, 0), `column "a" twice`},
		"begin at LSN 0":        {encBegin(0, pgEpoch, 5), "final LSN 0"},
		"message content cut":   {[]byte{'M', 1, 0, 0, 0, 0, 0, 0, 0, 1, 'p', 0, 0xff, 0xff, 0xff, 0xff}, "truncated"},
	} {
		_, err := parseMessage(c.data)
		require.Error(t, err, name)
		require.Contains(t, err.Error(), c.want, name)
	}

	// What Postgres sends parses as before.
	for _, data := range [][]byte{rel, seedBegin, encInsert(7, seedRow), encUpdate(7, 'O', seedRow, seedToast),
		encUpdate(7, 0, nil, seedRow), encDelete(7, 'K', seedRow)} {
		_, err := parseMessage(data)
		require.NoError(t, err, "%q", data)
	}
}
