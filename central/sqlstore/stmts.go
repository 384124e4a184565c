package sqlstore

import (
	"context"
	"database/sql"
	"errors"
)

// stmts are the statements that every upload runs: RecordScan's inserts
// and the reads of a message's record. They are prepared once per Store,
// at Open, rather than for each execution, which SQLite would otherwise
// compile again every time. Outside a transaction they run as they are;
// inside one, through tx.StmtContext, which reuses the statement prepared
// on the transaction's connection (database/sql prepares it on each
// connection once, when first used there).
type stmts struct {
	insertMessage, insertRcpt *sql.Stmt
	nextAlertSeq, insertAlert *sql.Stmt
	getRecord, getPOP3Record  *sql.Stmt
}

// prepare prepares s.stmts; on an error it closes those it prepared.
func (s *Store) prepare(ctx context.Context) error {
	for _, p := range []struct {
		stmt  **sql.Stmt
		query string
	}{
		{&s.stmts.insertMessage, `INSERT INTO messages
			(tenant, sensor_id, message_id, mailbox, uidl, recorded_at, verdict, alert_id, record,
			 received_at, client_ip, mail_from, header_from, subject, header_message_id)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`},
		{&s.stmts.insertRcpt, `INSERT INTO message_rcpts (tenant, sensor_id, message_id, rcpt, received_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`},
		{&s.stmts.nextAlertSeq, `INSERT INTO alert_seq (tenant, seq) VALUES (?, 1)
			ON CONFLICT (tenant) DO UPDATE SET seq = alert_seq.seq + 1 RETURNING seq`},
		{&s.stmts.insertAlert, `INSERT INTO alerts (tenant, id, seq, severity, sensor_id, message_id, search, alert)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`},
		{&s.stmts.getRecord, `SELECT record FROM messages WHERE tenant = ? AND sensor_id = ? AND message_id = ?`},
		{&s.stmts.getPOP3Record, `SELECT record FROM messages WHERE tenant = ? AND mailbox = ? AND uidl = ?`},
	} {
		st, err := s.db.PrepareContext(ctx, s.d.q(p.query))
		if err != nil {
			s.stmts.close()
			return s.d.wrap("prepare the statements of uploads", err)
		}
		*p.stmt = st
	}
	return nil
}

// close closes the statements prepared.
func (st *stmts) close() error {
	var errs []error
	for _, s := range []*sql.Stmt{st.insertMessage, st.insertRcpt, st.nextAlertSeq, st.insertAlert, st.getRecord, st.getPOP3Record} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}
