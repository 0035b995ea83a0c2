-- Approval workflows and custom compliance checks are written through the
-- API (with If-Match) and from files loaded at start: both tables get a
-- revision for optimistic concurrency, and checks say where they came from.

ALTER TABLE approval_workflow ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;

ALTER TABLE compliance_check ADD COLUMN source TEXT NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'file'));
ALTER TABLE compliance_check ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
