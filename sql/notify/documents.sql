-- The documents notification payloads carry, as temp macros (one definition for every event
-- kind): an invoice with its lines, a credit note with its lines, and the documents that
-- correct an invoice. Amounts are decimal strings in the currency's minor units (credit note
-- totals positive: the amount credited; their lines negative: the delta of the line each
-- corrects), quantities and unit prices without trailing zeros, instants in UTC with
-- microseconds. Reads temp table `currency_digits` and macros `money_text`, `decimal_text`
-- (pipelines.warehouse.register_currency_digits). Parameters: none.

CREATE OR REPLACE TEMP MACRO notify_instant(t) AS strftime(t, '%Y-%m-%dT%H:%M:%S.%fZ');

-- The invoicing system's id of a document of ours (the custom integration's, else Stripe's).
CREATE OR REPLACE TEMP MACRO notify_external_id(internal, object_types) AS (
    SELECT coalesce(min(external_id) FILTER (WHERE provider = 'custom_invoicing'),
                    min(external_id))
    FROM sync.external_ids
    WHERE internal_id = internal AND list_contains(object_types, object_type));

-- An invoice as the payload shows it, in the state `shown_status` (the one an invoice event
-- announces; the current one for credit note and correction events).
CREATE OR REPLACE TEMP MACRO notify_invoice(id, shown_status) AS (
    SELECT json_object(
        'invoice_id', i.invoice_id,
        'number', i.invoice_number,
        'status', shown_status,
        'customer', json_object('id', i.customer_id, 'name', c.name, 'email', c.email),
        'subscription_id', i.subscription_id,
        'plan_key', i.plan_key,
        'billing_month', i.billing_month,
        'period', json_object('start', CAST(i.period_start AS VARCHAR),
                              'end', CAST(i.period_end AS VARCHAR)),
        'currency', i.currency,
        'subtotal', money_text(i.subtotal, d.digits),
        'discount_total', money_text(i.discount_total, d.digits),
        'total', money_text(i.total, d.digits),
        -- tax (docs/tax.md): total is before an exclusive tax; total_including_tax is owed
        'tax_total', money_text(i.tax_total, d.digits),
        'total_including_tax', money_text(i.total_including_tax, d.digits),
        'tax_note', i.tax_note,
        'tax', json_object('rate_key', i.tax_rate_key,
                           'percent', decimal_text(i.tax_rate_percent),
                           'inclusive', coalesce(i.tax_inclusive, false),
                           'country', i.tax_country, 'region', i.tax_region,
                           'note', i.tax_note),
        'collection_method', i.collection_method,
        'due_date', CAST(i.due_date AS VARCHAR),
        'billing_profile', i.billing_profile,
        'app', i.app,
        'issued_at', notify_instant(i.issued_at),
        'sent_to_customer_at', notify_instant(i.sent_to_customer_at),
        'hosted_invoice_url', i.hosted_invoice_url,
        'corrects_invoice_id', i.corrects_invoice_id,
        'external_ids', json_object(
            'invoicing', notify_external_id(i.invoice_id, ['invoice']),
            'payment', (SELECT min(external_id) FROM sync.external_ids
                        WHERE internal_id = i.invoice_id AND object_type = 'payment')),
        'lines', coalesce((
            SELECT CAST(list(json_object(
                'line_id', l.line_id, 'line_type', l.line_type, 'price_key', l.price_key,
                'meter_key', l.meter_key, 'description', l.description,
                'quantity', decimal_text(l.quantity), 'unit_price', decimal_text(l.unit_price),
                'amount', money_text(l.amount, d.digits),
                'tax_rate_key', l.tax_rate_key,
                'tax_rate_percent', decimal_text(l.tax_rate_percent),
                'tax_inclusive', coalesce(l.tax_inclusive, false),
                'tax_amount', money_text(l.tax_amount, d.digits),
                'period', json_object('start', CAST(l.period_start AS VARCHAR),
                                      'end', CAST(l.period_end AS VARCHAR)),
                'corrects_invoice_id', l.corrects_invoice_id,
                'corrects_line_id', l.corrects_line_id,
                'external_id', notify_external_id(l.line_id, ['line', 'discount']))
                ORDER BY l.position) AS JSON)
            FROM billing.invoice_lines l WHERE l.invoice_id = i.invoice_id),
            CAST('[]' AS JSON)))
    FROM billing.invoices i
    LEFT JOIN currency_digits d USING (currency)
    LEFT JOIN billing.customers c USING (customer_id)
    WHERE i.invoice_id = id);

-- A credit note as the payload shows it, in the state `shown_status`, with its lines (each
-- naming the line of the credited invoice it corrects).
CREATE OR REPLACE TEMP MACRO notify_credit_note(id, shown_status) AS (
    SELECT json_object(
        'credit_note_id', n.credit_note_id,
        'number', n.credit_note_number,
        'status', shown_status,
        'invoice_id', n.invoice_id,
        'customer', json_object('id', n.customer_id, 'name', c.name, 'email', c.email),
        'billing_month', n.billing_month,
        'currency', n.currency,
        'total', money_text(n.total, d.digits),
        'tax_total', money_text(n.tax_total, d.digits),
        'total_including_tax', money_text(n.total_including_tax, d.digits),
        'tax_note', (SELECT i.tax_note FROM billing.invoices i WHERE i.invoice_id = n.invoice_id),
        'kind', n.kind,
        'reason', n.reason,
        'billing_profile', n.billing_profile,
        'app', n.app,
        'created_at', notify_instant(n.created_at),
        'issued_at', notify_instant(n.issued_at),
        'sent_to_customer_at', notify_instant(n.sent_to_customer_at),
        'external_ids', json_object(
            'invoicing', notify_external_id(n.credit_note_id, ['credit_note'])),
        'lines', coalesce((
            SELECT CAST(list(json_object(
                'credit_note_line_id', l.credit_note_line_id,
                'corrects_line_id', l.corrects_line_id,
                'correction_id', l.correction_id,
                'description', l.description,
                'amount', money_text(l.amount, d.digits),
                'tax_rate_key', l.tax_rate_key,
                'tax_rate_percent', decimal_text(l.tax_rate_percent),
                'tax_inclusive', coalesce(l.tax_inclusive, false),
                'tax_amount', money_text(l.tax_amount, d.digits),
                'external_id', notify_external_id(l.credit_note_line_id, ['credit_note_line']))
                ORDER BY l.position) AS JSON)
            FROM billing.credit_note_lines l WHERE l.credit_note_id = n.credit_note_id),
            CAST('[]' AS JSON)))
    FROM billing.credit_notes n
    LEFT JOIN currency_digits d USING (currency)
    LEFT JOIN billing.customers c USING (customer_id)
    WHERE n.credit_note_id = id);

-- The documents correcting an invoice that were issued by `until`, in the order they were
-- issued: its credit notes and the invoices with lines correcting it (supplementary invoices,
-- or next invoices carrying `correction` lines). `amount` is what each changes of the invoice
-- (negative for a credit note), lines carry the line they correct and their delta.
CREATE OR REPLACE TEMP MACRO notify_correcting_documents(id, until) AS (
    SELECT coalesce(CAST(list(json_object(
               'document_type', document_type, 'id', document_id, 'number', number,
               'status', status, 'currency', currency,
               'total', money_text(total, digits),
               'total_including_tax', money_text(total_including_tax, digits),
               'amount', money_text(amount, digits),
               'issued_at', notify_instant(issued_at), 'lines', lines)
               ORDER BY issued_at, document_id) AS JSON), CAST('[]' AS JSON))
    FROM (
        SELECT 'credit_note' AS document_type, n.credit_note_id AS document_id,
               n.credit_note_number AS number, n.status, n.currency, n.total,
               coalesce(n.total_including_tax, n.total) AS total_including_tax,
               -n.total AS amount, n.issued_at, d.digits,
               (SELECT CAST(list(json_object(
                    'line_id', l.credit_note_line_id, 'corrects_line_id', l.corrects_line_id,
                    'description', l.description, 'amount', money_text(l.amount, d.digits))
                    ORDER BY l.position) AS JSON)
                FROM billing.credit_note_lines l
                WHERE l.credit_note_id = n.credit_note_id) AS lines
        FROM billing.credit_notes n
        LEFT JOIN currency_digits d USING (currency)
        WHERE n.invoice_id = id AND n.issued_at <= until
        UNION ALL
        SELECT CASE WHEN i.corrects_invoice_id = id THEN 'supplementary_invoice'
                    ELSE 'invoice' END,
               i.invoice_id, i.invoice_number, i.status, i.currency, i.total,
               coalesce(i.total_including_tax, i.total),
               (SELECT sum(l.amount) FROM billing.invoice_lines l
                WHERE l.invoice_id = i.invoice_id AND l.corrects_invoice_id = id),
               i.issued_at, d.digits,
               (SELECT CAST(list(json_object(
                    'line_id', l.line_id, 'corrects_line_id', l.corrects_line_id,
                    'description', l.description, 'amount', money_text(l.amount, d.digits))
                    ORDER BY l.position) AS JSON)
                FROM billing.invoice_lines l
                WHERE l.invoice_id = i.invoice_id AND l.corrects_invoice_id = id)
        FROM billing.invoices i
        LEFT JOIN currency_digits d USING (currency)
        WHERE i.invoice_id <> id AND i.issued_at <= until
          AND EXISTS (SELECT 1 FROM billing.invoice_lines l
                      WHERE l.invoice_id = i.invoice_id AND l.corrects_invoice_id = id)));

-- What the invoice comes to once the documents issued by `until` are counted: its total, less
-- what its credit notes credit, plus what other invoices add to it. With `including_tax`, the
-- same in totals including tax (total_including_tax, the credit notes' including their tax, the
-- correcting lines' amounts plus their exclusive tax): what the customer owes.
CREATE OR REPLACE TEMP MACRO notify_corrected_total(id, until, including_tax) AS (
    SELECT money_text(
        CASE WHEN including_tax THEN coalesce(i.total_including_tax, i.total) ELSE i.total END
        - coalesce((SELECT sum(CASE WHEN including_tax
                                    THEN coalesce(n.total_including_tax, n.total)
                                    ELSE n.total END)
                    FROM billing.credit_notes n
                    WHERE n.invoice_id = id AND n.issued_at <= until), 0)
        + coalesce((SELECT sum(l.amount + CASE WHEN including_tax AND NOT l.tax_inclusive
                                               THEN coalesce(l.tax_amount, 0) ELSE 0 END)
                    FROM billing.invoice_lines l
                    JOIN billing.invoices o ON o.invoice_id = l.invoice_id
                    WHERE l.corrects_invoice_id = id AND o.invoice_id <> id
                      AND o.issued_at <= until), 0),
        d.digits)
    FROM billing.invoices i LEFT JOIN currency_digits d USING (currency)
    WHERE i.invoice_id = id);
