-- Enrollments by entry time, for what entered in a period (a pass, a report's window).
CREATE INDEX enrollments_entered ON enrollments (entered_at);
