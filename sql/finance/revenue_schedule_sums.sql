-- Each line's revenue schedule against the line (the blocking check
-- revenue_schedule_sums_to_lines): the months sum to the line's net amount exactly.
SELECT line_id, any_value(document_id) AS document_id, any_value(currency) AS currency,
       sum(amount)::DECIMAL(38, 12) AS scheduled,
       any_value(line_amount)::DECIMAL(38, 12) AS line_amount,
       count(DISTINCT line_amount) AS line_amounts
FROM finance.revenue_schedule
GROUP BY line_id
