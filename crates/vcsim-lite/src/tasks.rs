//! Tasks: queued by a method, running for the configured task duration, then succeeding.
//!
//! A task's effect (a host entering maintenance mode, a VM powering off) happens when the task
//! completes, as on vCenter, so a client that follows the task sees the state change only once
//! the task reports `success`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::value::{MoRef, VimValue, now_rfc3339};

/// Most tasks remembered; older ones are forgotten.
const MAX_TASKS: usize = 10_000;
/// Most tasks listed in `TaskManager.recentTask`.
const MAX_RECENT: usize = 50;
/// First task number handed out.
const FIRST_TASK: u64 = 101;

/// What a task changes when it completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TaskEffect {
    /// Nothing changes.
    None,
    /// Host `host` enters (`true`) or exits maintenance mode.
    HostMaintenance {
        /// moId of the host.
        host: String,
        /// Whether it enters.
        enter: bool,
    },
    /// VM `vm` powers on (`true`) or off.
    VmPower {
        /// moId of the VM.
        vm: String,
        /// Whether it powers on.
        on: bool,
    },
}

/// What a method asks for when it starts a task.
#[derive(Debug, Clone)]
pub(crate) struct NewTask {
    /// vCenter's task name, e.g. `EnterMaintenanceMode_Task`.
    pub(crate) name: String,
    /// Description id, e.g. `HostSystem.enterMaintenanceMode`.
    pub(crate) description_id: String,
    /// The object the task runs on.
    pub(crate) entity: MoRef,
    /// That object's name.
    pub(crate) entity_name: String,
    /// The user who started it.
    pub(crate) user_name: String,
    /// The change made on completion.
    pub(crate) effect: TaskEffect,
    /// `TaskInfo.result` once it succeeded.
    pub(crate) result: Option<VimValue>,
}

/// One task, running or finished.
#[derive(Debug, Clone)]
pub(crate) struct TaskRecord {
    /// moId, e.g. `task-101`.
    pub(crate) id: String,
    spec: NewTask,
    queue_time: String,
    started: Instant,
    duration: Duration,
    complete_time: Option<String>,
}

impl TaskRecord {
    /// The task's `TaskInfo` now: `running` with a progress figure, or `success`.
    pub(crate) fn info(&self) -> VimValue {
        let spec = &self.spec;
        let mut fields = vec![
            ("key", VimValue::str(&self.id)),
            ("task", VimValue::moref("Task", &self.id)),
            ("name", VimValue::str(&spec.name)),
            ("descriptionId", VimValue::str(&spec.description_id)),
            ("entity", VimValue::MoRef(spec.entity.clone())),
            ("entityName", VimValue::str(&spec.entity_name)),
        ];
        match &self.complete_time {
            Some(_) => fields.push(("state", VimValue::enumv("TaskInfoState", "success"))),
            None => fields.push(("state", VimValue::enumv("TaskInfoState", "running"))),
        }
        fields.push(("cancelled", VimValue::Bool(false)));
        fields.push(("cancelable", VimValue::Bool(false)));
        if self.complete_time.is_none() {
            let total = self.duration.as_millis().max(1);
            let done = self.started.elapsed().as_millis().min(total);
            // In steps of 10%, so a client following the task sees a few updates, not one
            // per poll.
            let percent = i32::try_from(done * 10 / total * 10).unwrap_or(90).min(90);
            fields.push(("progress", VimValue::Int(percent)));
        }
        if self.complete_time.is_some()
            && let Some(result) = &spec.result
        {
            fields.push(("result", result.clone().any()));
        }
        fields.extend([
            (
                "reason",
                VimValue::Data(
                    "TaskReasonUser",
                    vec![("userName", VimValue::str(&spec.user_name))],
                ),
            ),
            ("queueTime", VimValue::DateTime(self.queue_time.clone())),
            ("startTime", VimValue::DateTime(self.queue_time.clone())),
        ]);
        if let Some(done) = &self.complete_time {
            fields.push(("completeTime", VimValue::DateTime(done.clone())));
        }
        fields.push(("eventChainId", VimValue::Int(0)));
        VimValue::Data("TaskInfo", fields)
    }
}

/// Every remembered task, by number.
#[derive(Debug)]
pub(crate) struct TaskTable {
    tasks: BTreeMap<u64, TaskRecord>,
    next: u64,
    /// How long each new task runs before it completes.
    pub(crate) duration: Duration,
}

impl TaskTable {
    /// An empty table whose tasks run for `duration`.
    pub(crate) fn new(duration: Duration) -> Self {
        Self {
            tasks: BTreeMap::new(),
            next: FIRST_TASK,
            duration,
        }
    }

    /// Queues a task; returns its reference. Effects are applied by [`TaskTable::complete_due`].
    pub(crate) fn start(&mut self, spec: NewTask) -> MoRef {
        let n = self.next;
        self.next += 1;
        let id = format!("task-{n}");
        self.tasks.insert(
            n,
            TaskRecord {
                id: id.clone(),
                spec,
                queue_time: now_rfc3339(),
                started: Instant::now(),
                duration: self.duration,
                complete_time: None,
            },
        );
        while self.tasks.len() > MAX_TASKS {
            self.tasks.pop_first();
        }
        MoRef::new("Task", id)
    }

    /// Marks every task whose time is up as succeeded; returns their effects in order.
    pub(crate) fn complete_due(&mut self) -> Vec<(TaskEffect, String)> {
        let mut effects = Vec::new();
        for task in self.tasks.values_mut() {
            if task.complete_time.is_none() && task.started.elapsed() >= task.duration {
                task.complete_time = Some(now_rfc3339());
                effects.push((task.spec.effect.clone(), task.spec.user_name.clone()));
            }
        }
        effects
    }

    /// The task `id`.
    pub(crate) fn get(&self, id: &str) -> Option<&TaskRecord> {
        let n: u64 = id.strip_prefix("task-")?.parse().ok()?;
        self.tasks.get(&n).filter(|t| t.id == id)
    }

    /// References to the most recent tasks, oldest first (`TaskManager.recentTask`).
    pub(crate) fn recent(&self) -> Vec<MoRef> {
        let mut recent: Vec<MoRef> = self
            .tasks
            .values()
            .rev()
            .take(MAX_RECENT)
            .map(|t| MoRef::new("Task", &t.id))
            .collect();
        recent.reverse();
        recent
    }

    /// Whether a task that is not done yet would apply `effect`.
    pub(crate) fn pending(&self, effect: &TaskEffect) -> bool {
        self.tasks
            .values()
            .any(|t| t.complete_time.is_none() && &t.spec.effect == effect)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(effect: TaskEffect) -> NewTask {
        NewTask {
            name: "EnterMaintenanceMode_Task".into(),
            description_id: "HostSystem.enterMaintenanceMode".into(),
            entity: MoRef::new("HostSystem", "host-21"),
            entity_name: "esx-21".into(),
            user_name: "u".into(),
            effect,
            result: None,
        }
    }

    #[test]
    fn a_task_runs_for_its_duration_then_succeeds_once() {
        let mut table = TaskTable::new(Duration::from_millis(300));
        let effect = TaskEffect::HostMaintenance {
            host: "host-21".into(),
            enter: true,
        };
        let task = table.start(spec(effect.clone()));
        assert!(table.complete_due().is_empty());
        assert!(table.pending(&effect));
        let info = table.get(&task.value).expect("task").info().to_json();
        assert_eq!(info["state"], "running");
        assert!(info.get("completeTime").is_none());
        std::thread::sleep(Duration::from_millis(350));
        let done = table.complete_due();
        assert_eq!(done, vec![(effect.clone(), "u".to_string())]);
        assert!(table.complete_due().is_empty(), "effects apply once");
        assert!(!table.pending(&effect));
        let info = table.get(&task.value).expect("task").info().to_json();
        assert_eq!(info["state"], "success");
        assert!(info["completeTime"].is_string());
        assert_eq!(table.recent(), vec![task]);
    }
}
