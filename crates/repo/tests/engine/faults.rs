//! Storage faults: an OpenDAL layer below the retry layer fails a share of
//! reads and writes. Transient faults are retried and the backup succeeds;
//! persistent ones fail the operation cleanly and leave a consistent
//! repository whose earlier snapshots still restore.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chom_repo::{BackupOptions, CheckOptions, Progress, ReadData, Repository, Source, Storage};
use opendal::layers::RetryLayer;
use opendal::raw::*;
use opendal::{
    Buffer, BytesRange, Capability, Error, ErrorKind, Metadata, OperationContext, Operator, Result,
};

use super::util::{PASSWORD, assert_same_tree, fast_init, sample_tree};

/// Which operations fail.
#[derive(Debug, Clone)]
struct Faults {
    /// Fail this share of reads and writes with a temporary error.
    transient_ratio: f64,
    /// Fail every write under this prefix with a permanent error.
    persistent_write_prefix: Option<String>,
    counter: Arc<AtomicU64>,
    injected: Arc<AtomicU64>,
}

impl Faults {
    fn transient(ratio: f64) -> Self {
        Faults {
            transient_ratio: ratio,
            persistent_write_prefix: None,
            counter: Arc::default(),
            injected: Arc::default(),
        }
    }

    /// Deterministic "random" decision per call.
    fn roll(&self) -> bool {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
        let fail = (x % 1000) as f64 / 1000.0 < self.transient_ratio;
        if fail {
            self.injected.fetch_add(1, Ordering::Relaxed);
        }
        fail
    }

    fn temporary() -> Error {
        Error::new(ErrorKind::Unexpected, "injected transient fault").set_temporary()
    }
}

#[derive(Debug, Clone)]
struct FaultLayer(Faults);

impl Layer for FaultLayer {
    fn apply_service(&self, inner: Servicer) -> Servicer {
        Arc::new(FaultService {
            inner,
            faults: self.0.clone(),
        })
    }
}

#[derive(Debug)]
struct FaultService {
    inner: Servicer,
    faults: Faults,
}

impl Service for FaultService {
    type Reader = FaultReader<oio::Reader>;
    type Writer = FaultWriter<oio::Writer>;
    type Lister = oio::Lister;
    type Deleter = oio::Deleter;
    type Copier = oio::Copier;
    type Composer = oio::Composer;

    fn info(&self) -> ServiceInfo {
        self.inner.info()
    }

    fn capability(&self) -> Capability {
        let mut capability = self.inner.capability();
        capability.write_can_copy_from = false;
        capability
    }

    fn compose(&self, ctx: &OperationContext, to: &str, args: OpCompose) -> Result<Self::Composer> {
        self.inner.compose(ctx, to, args)
    }

    async fn create_dir(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpCreateDir,
    ) -> Result<RpCreateDir> {
        self.inner.create_dir(ctx, path, args).await
    }

    async fn stat(&self, ctx: &OperationContext, path: &str, args: OpStat) -> Result<RpStat> {
        self.inner.stat(ctx, path, args).await
    }

    fn read(&self, ctx: &OperationContext, path: &str, args: OpRead) -> Result<Self::Reader> {
        let inner = self.inner.read(ctx, path, args)?;
        Ok(FaultReader {
            inner,
            faults: self.faults.clone(),
        })
    }

    fn write(&self, ctx: &OperationContext, path: &str, args: OpWrite) -> Result<Self::Writer> {
        let inner = self.inner.write(ctx, path, args)?;
        let persistent = self
            .faults
            .persistent_write_prefix
            .as_ref()
            .is_some_and(|p| path.starts_with(p.as_str()));
        Ok(FaultWriter {
            inner,
            faults: self.faults.clone(),
            persistent,
        })
    }

    fn copy(
        &self,
        ctx: &OperationContext,
        from: &str,
        to: &str,
        args: OpCopy,
    ) -> Result<Self::Copier> {
        self.inner.copy(ctx, from, to, args)
    }

    fn list(&self, ctx: &OperationContext, path: &str, args: OpList) -> Result<Self::Lister> {
        self.inner.list(ctx, path, args)
    }

    fn delete(&self, ctx: &OperationContext) -> Result<Self::Deleter> {
        self.inner.delete(ctx)
    }

    async fn rename(
        &self,
        ctx: &OperationContext,
        from: &str,
        to: &str,
        args: OpRename,
    ) -> Result<RpRename> {
        self.inner.rename(ctx, from, to, args).await
    }

    async fn restore(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpRestore,
    ) -> Result<RpRestore> {
        self.inner.restore(ctx, path, args).await
    }

    async fn presign(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpPresign,
    ) -> Result<RpPresign> {
        self.inner.presign(ctx, path, args).await
    }
}

struct FaultReader<R> {
    inner: R,
    faults: Faults,
}

impl<R: oio::Read> oio::Read for FaultReader<R> {
    async fn open(&self, range: BytesRange) -> Result<(RpRead, Box<dyn oio::ReadStreamDyn>)> {
        if self.faults.roll() {
            return Err(Faults::temporary());
        }
        self.inner.open(range).await
    }

    async fn read(&self, range: BytesRange) -> Result<(RpRead, Buffer)> {
        if self.faults.roll() {
            return Err(Faults::temporary());
        }
        self.inner.read(range).await
    }
}

struct FaultWriter<W> {
    inner: W,
    faults: Faults,
    persistent: bool,
}

impl<W: oio::Write> oio::Write for FaultWriter<W> {
    async fn write(&mut self, bs: Buffer) -> Result<()> {
        if self.faults.roll() {
            return Err(Faults::temporary());
        }
        self.inner.write(bs).await
    }

    async fn close(&mut self) -> Result<Metadata> {
        if self.persistent {
            self.faults.injected.fetch_add(1, Ordering::Relaxed);
            return Err(Error::new(
                ErrorKind::PermissionDenied,
                "injected persistent fault: bucket policy denies writes",
            ));
        }
        if self.faults.roll() {
            return Err(Faults::temporary());
        }
        self.inner.close().await
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

fn faulty_storage(root: &std::path::Path, faults: &Faults) -> Storage {
    let builder = opendal::services::Fs::default()
        .root(root.to_str().unwrap())
        .atomic_write_dir(root.join("tmp").to_str().unwrap());
    let op = Operator::new(builder)
        .unwrap()
        .layer(FaultLayer(faults.clone()))
        .layer(
            RetryLayer::new()
                .with_max_times(8)
                .with_min_delay(Duration::from_millis(1))
                .with_max_delay(Duration::from_millis(20)),
        );
    Storage::from_operator(op, root.display().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_faults_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    std::fs::create_dir_all(&root).unwrap();
    let faults = Faults::transient(0.2);
    let repo = Repository::init(faulty_storage(&root, &faults), Some(PASSWORD), fast_init())
        .await
        .unwrap();
    let src = dir.path().join("site");
    sample_tree(&src, 11);
    let done = repo
        .backup(
            vec![Source::path(&src)],
            &BackupOptions::default(),
            Progress::new(),
        )
        .await
        .unwrap();
    let target = dir.path().join("out");
    repo.restore(&done.id, &target, &Default::default(), Progress::new())
        .await
        .unwrap();
    assert_same_tree(&src, &target.join("site"));
    let mut opts = CheckOptions::default();
    opts.read_data = ReadData::All;
    assert!(repo.check(&opts, Progress::new()).await.unwrap().is_ok());
    assert!(
        faults.injected.load(Ordering::Relaxed) > 5,
        "faults were really injected"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn persistent_faults_fail_cleanly_and_keep_the_repository_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    std::fs::create_dir_all(&root).unwrap();
    let healthy = Faults::transient(0.0);
    let repo = Repository::init(faulty_storage(&root, &healthy), Some(PASSWORD), fast_init())
        .await
        .unwrap();
    let src = dir.path().join("site");
    sample_tree(&src, 12);
    let first = repo
        .backup(
            vec![Source::path(&src)],
            &BackupOptions::default(),
            Progress::new(),
        )
        .await
        .unwrap();

    // Now every pack upload is refused.
    std::fs::write(src.join("new.bin"), super::util::noise(1_000_000, 5)).unwrap();
    let mut broken = Faults::transient(0.0);
    broken.persistent_write_prefix = Some("data/".into());
    let storage = faulty_storage(&root, &broken);
    let repo2 = Repository::open(storage, Some(PASSWORD)).await.unwrap();
    let err = repo2
        .backup(
            vec![Source::path(&src)],
            &BackupOptions::default(),
            Progress::new(),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("denies writes") || err.to_string().contains("uploader stopped"),
        "{err}"
    );
    assert!(broken.injected.load(Ordering::Relaxed) > 0);
    assert_eq!(
        repo2.snapshots().await.unwrap().len(),
        1,
        "no snapshot from the failed backup"
    );

    // The repository is consistent and the first snapshot restores.
    let repo3 = Repository::open(faulty_storage(&root, &healthy), Some(PASSWORD))
        .await
        .unwrap();
    let mut opts = CheckOptions::default();
    opts.read_data = ReadData::All;
    let report = repo3.check(&opts, Progress::new()).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    let target = dir.path().join("out");
    repo3
        .restore(&first.id, &target, &Default::default(), Progress::new())
        .await
        .unwrap();
    std::fs::remove_file(src.join("new.bin")).unwrap();
    assert_same_tree(&src, &target.join("site"));
}
