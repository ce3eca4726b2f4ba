-- The blast-radius guard counts each pass's new enrollments by their entry time.
CREATE INDEX enrollments_entered ON enrollments (entered_at);
