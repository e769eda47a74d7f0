//! What each row image held, recorded while its keys are gathered.
//!
//! A write bumps more than the "content" keys of its rows (see
//! [`crate::write`]): the membership key of a value only when a row enters
//! or leaves it, a column's key only when an update changes that column.
//! Both need the old and the new image of a row side by side, column by
//! column, and the model's `row_keys` (derived) is the only code that
//! sees a row's values. So, on the write path, [`RowKeys`](super::RowKeys)
//! records what the derive's helpers encode: each mapped column's bind
//! bytes (keyable or not: floats too, to tell whether they changed), and
//! which values each composite key is made of. The write pairs the rows
//! afterwards (`write::change_keys`).
//!
//! Recording stores the bytes the helpers encoded anyway: a keyable value's
//! bytes once more, a non-keyable one's (which today's keys never needed)
//! once, and the column names the helpers already owned. Explicit
//! invalidation by a row (`Cache::invalidate_object`) records the same way.

use std::ops::Range;

/// One mapped column's value in one image.
#[derive(Debug)]
pub(crate) struct ColumnValue {
    /// Index into [`Images::tables`]: the column's table as it renders.
    pub(crate) table: usize,
    /// The column's name as it renders.
    pub(crate) column: String,
    /// The value's bind bytes (`Some(None)`: SQL `NULL`); `None` when they
    /// could not be obtained (the value did not encode).
    pub(crate) bytes: Option<Option<Vec<u8>>>,
    /// Whether the value's type compares by bytes: it got a value key.
    pub(crate) keyable: bool,
}

/// One composite key (declared, or a composite primary key) in one image.
#[derive(Debug)]
pub(crate) struct CompositeValue {
    /// Index into [`Images::tables`]: the table as the model names it.
    pub(crate) table: usize,
    /// Its columns' values in declared order: a range of [`Images::parts`].
    pub(crate) parts: Range<usize>,
    /// Whether it got a composite key (every part keyable).
    pub(crate) keyed: bool,
}

/// One row image: ranges of [`Images::values`] and [`Images::composites`].
#[derive(Clone, Debug)]
pub(crate) struct RowImage {
    pub(crate) values: Range<usize>,
    pub(crate) composites: Range<usize>,
    /// `false` when some column's name could not be read, or a composite's
    /// part matched no recorded column: the row cannot be compared
    /// column by column (its changes widen to the table).
    pub(crate) complete: bool,
}

impl RowImage {
    /// Whether the row recorded anything to compare: a model whose
    /// `row_keys` does not go through the derive's helpers records nothing.
    pub(crate) fn known(&self) -> bool {
        self.complete && !self.values.is_empty()
    }
}

/// The images of a write's rows, in the order they were recorded.
#[derive(Debug, Default)]
pub(crate) struct Images {
    /// Table names as written, each once (rows of one model share one).
    pub(crate) tables: Vec<String>,
    pub(crate) values: Vec<ColumnValue>,
    pub(crate) composites: Vec<CompositeValue>,
    /// Composite parts: an index into `values` (`None`: no such column).
    pub(crate) parts: Vec<Option<usize>>,
    pub(crate) rows: Vec<RowImage>,
    /// The row being recorded.
    open: Option<RowImage>,
    /// How many rows will be recorded (a hint: the first one's size
    /// reserves room for the others).
    expected: usize,
}

impl Images {
    /// Images of about `rows` rows.
    pub(crate) fn with_rows(rows: usize) -> Images {
        Images {
            rows: Vec::with_capacity(rows),
            expected: rows,
            ..Images::default()
        }
    }

    /// Start recording a row.
    pub(crate) fn begin_row(&mut self) {
        if self.rows.is_empty() {
            // Room for a typical model's first row: no growth step by step.
            self.values.reserve(8);
        }
        self.open = Some(RowImage {
            values: self.values.len()..self.values.len(),
            composites: self.composites.len()..self.composites.len(),
            complete: true,
        });
    }

    /// Finish the row [`begin_row`](Self::begin_row) started.
    pub(crate) fn end_row(&mut self) {
        if let Some(mut row) = self.open.take() {
            row.values.end = self.values.len();
            row.composites.end = self.composites.len();
            if self.rows.is_empty() && self.expected > 1 {
                // Rows of one model are alike: room for the others at once.
                let more = self.expected - 1;
                self.values.reserve(more.saturating_mul(self.values.len()));
                self.composites
                    .reserve(more.saturating_mul(self.composites.len()));
                self.parts.reserve(more.saturating_mul(self.parts.len()));
            }
            self.rows.push(row);
        }
    }

    /// The row being recorded, if any: helpers called outside a recorded
    /// row (a model's `row_keys` run by hand) record nothing.
    fn open(&mut self) -> Option<&mut RowImage> {
        self.open.as_mut()
    }

    fn table(&mut self, table: &str) -> usize {
        match self.tables.iter().position(|t| t == table) {
            Some(i) => i,
            None => {
                self.tables.push(table.to_owned());
                self.tables.len() - 1
            }
        }
    }

    /// Record a column's value.
    pub(crate) fn value(
        &mut self,
        table: &str,
        column: String,
        bytes: Option<Option<Vec<u8>>>,
        keyable: bool,
    ) {
        if self.open().is_none() {
            return;
        }
        let table = self.table(table);
        self.values.push(ColumnValue {
            table,
            column,
            bytes,
            keyable,
        });
    }

    /// Record that a column's name could not be read.
    pub(crate) fn unnamed(&mut self) {
        if let Some(row) = self.open() {
            row.complete = false;
        }
    }

    /// Record a composite key of `columns` (as the model names them),
    /// `keyed` when it got a composite key.
    pub(crate) fn composite<'c>(
        &mut self,
        table: &str,
        columns: impl IntoIterator<Item = &'c str>,
        keyed: bool,
    ) {
        let Some(row) = self.open.as_ref() else {
            return;
        };
        let own = row.values.start..self.values.len();
        let start = self.parts.len();
        let mut found_all = true;
        for column in columns {
            let at = own
                .clone()
                .find(|&i| self.values.get(i).is_some_and(|v| v.column == column));
            found_all &= at.is_some();
            self.parts.push(at);
        }
        if keyed && !found_all {
            self.unnamed();
        }
        let table = self.table(table);
        self.composites.push(CompositeValue {
            table,
            parts: start..self.parts.len(),
            keyed,
        });
    }

    /// The values of `row`.
    pub(crate) fn values_of(&self, row: &RowImage) -> &[ColumnValue] {
        self.values.get(row.values.clone()).unwrap_or_default()
    }

    /// The composites of `row`.
    pub(crate) fn composites_of(&self, row: &RowImage) -> &[CompositeValue] {
        self.composites
            .get(row.composites.clone())
            .unwrap_or_default()
    }

    /// The values of a composite's parts (`None` for a part with no value).
    pub(crate) fn parts_of<'s>(
        &'s self,
        composite: &CompositeValue,
    ) -> impl Iterator<Item = Option<&'s ColumnValue>> + 's {
        self.parts
            .get(composite.parts.clone())
            .unwrap_or_default()
            .iter()
            .map(|at| at.and_then(|i| self.values.get(i)))
    }
}
