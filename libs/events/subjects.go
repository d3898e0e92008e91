package events

import (
	"strconv"
	"strings"

	eventsv1 "cryptopill.dev/jobs/proto/events/v1"
)

// Stream names.
const (
	StreamTicks    = "CP_TICKS"
	StreamUniverse = "CP_UNIVERSE"
	StreamCDC      = "CP_CDC"
	StreamJobs     = "CP_JOBS"
	StreamImports  = "CP_IMPORTS"
	StreamDLQ      = "CP_DLQ"
)

// Durable consumer names declared by NewTopology. Each is shared by every replica of its
// service, and its dead letters go to DeadLetterSubject(name).
const (
	// ConsumerStrauxTicks reads cp.tick.straux for the straux service.
	ConsumerStrauxTicks = "straux-ticks"
	// ConsumerCinimportTicks reads cp.tick.cinimport (the periodic sweep) for cinimport.
	ConsumerCinimportTicks = "cinimport-ticks"
	// ConsumerCinimportChanges reads session changes and account-trade inserts for cinimport.
	ConsumerCinimportChanges = "cinimport-changes"
	// ConsumerSeederUniverse reads cp.universe.changed for the seeder, one message at a time.
	ConsumerSeederUniverse = "seeder-universe"
)

// Module names used in tick subjects.
const (
	ModuleStraux    = "straux"
	ModuleCinimport = "cinimport"
)

// Subjects and subject filters.
const (
	// SubjectUniverseChanged carries eventsv1.UniverseChanged.
	SubjectUniverseChanged = "cp.universe.changed"

	// SubjectsTicks, ... are the subject filters of the streams.
	SubjectsTicks    = "cp.tick.>"
	SubjectsUniverse = "cp.universe.>"
	SubjectsCDC      = "cp.cdc.>"
	SubjectsJobs     = "cp.job.>"
	SubjectsImports  = "cp.cinimport.>"
	SubjectsDLQ      = "cp.dlq.>"
)

// TickSubject is the subject of module's ticks: cp.tick.<module>.
func TickSubject(module string) string { return "cp.tick." + module }

// ChangeSubject is the subject of a row change: cp.cdc.<schema>.<table>.<insert|update|delete>.
func ChangeSubject(schema, table string, op eventsv1.RowChange_Op) string {
	return "cp.cdc." + schema + "." + table + "." + OpToken(op)
}

// OpToken is the subject token of a row-change operation: "insert", "update", "delete".
func OpToken(op eventsv1.RowChange_Op) string {
	return strings.ToLower(strings.TrimPrefix(op.String(), "OP_"))
}

// ChangeFilter is the subject filter for every change of one table, any operation:
// cp.cdc.<schema>.<table>.*.
func ChangeFilter(schema, table string) string { return "cp.cdc." + schema + "." + table + ".*" }

// JobSubject is the subject of a job transition: cp.job.<kind>.<status>, status lower case
// without its prefix, e.g. cp.job.fetch_klines.succeeded.
func JobSubject(kind string, status eventsv1.JobStatus) string {
	return "cp.job." + kind + "." + StatusToken(status)
}

// StatusToken is the subject token of a job status: "queued", "running", "succeeded", ...
func StatusToken(status eventsv1.JobStatus) string {
	return strings.ToLower(strings.TrimPrefix(status.String(), "JOB_STATUS_"))
}

// MovesImportedSubject is the subject of a session's moves-imported events:
// cp.cinimport.moves_imported.<session_id>.
func MovesImportedSubject(sessionID int64) string {
	return "cp.cinimport.moves_imported." + strconv.FormatInt(sessionID, 10)
}

// DeadLetterSubject is the subject of a consumer's dead letters: cp.dlq.<consumer>.
func DeadLetterSubject(consumer string) string { return "cp.dlq." + consumer }
