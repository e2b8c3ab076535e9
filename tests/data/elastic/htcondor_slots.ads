MyType = "Machine"
TargetType = "Job"
Name = "slot1@wn-0.novalocal"
Machine = "wn-0.novalocal"
MyAddress = "<10.0.0.21:9618?addrs=10.0.0.21-9618&alias=wn-0.novalocal&noUDP&sock=startd_1843_5c2e>"
SlotType = "Static"
State = "Claimed"
Activity = "Busy"
Cpus = 1
TotalSlotCpus = 1
TotalCpus = 2.0
Memory = 1800
Disk = 9000000
Arch = "X86_64"
OpSys = "LINUX"
StartdIpAddr = "<10.0.0.21:9618?addrs=10.0.0.21-9618&alias=wn-0.novalocal&noUDP&sock=startd_1843_5c2e>"
CondorVersion = "$CondorVersion: 24.0.3 2024-12-19 BuildID: 773114 PackageID: 24.0.3-1 GitSHA: 2c3f4e7 $"
RemoteOwner = "cmsuser@htc.dodas"

MyType = "Machine"
TargetType = "Job"
Name = "slot2@wn-0.novalocal"
Machine = "wn-0.novalocal"
MyAddress = "<10.0.0.21:9618?addrs=10.0.0.21-9618&alias=wn-0.novalocal&noUDP&sock=startd_1843_5c2e>"
SlotType = "Static"
State = "Claimed"
Activity = "Busy"
Cpus = 1
TotalSlotCpus = 1
TotalCpus = 2.0
Memory = 1800
Disk = 9000000
Arch = "X86_64"
OpSys = "LINUX"
StartdIpAddr = "<10.0.0.21:9618?addrs=10.0.0.21-9618&alias=wn-0.novalocal&noUDP&sock=startd_1843_5c2e>"
CondorVersion = "$CondorVersion: 24.0.3 2024-12-19 BuildID: 773114 PackageID: 24.0.3-1 GitSHA: 2c3f4e7 $"
RemoteOwner = "cmsuser@htc.dodas"

MyType = "Machine"
TargetType = "Job"
Name = "slot1@wn-1.novalocal"
Machine = "wn-1.novalocal"
MyAddress = "<10.0.0.22:9618?addrs=10.0.0.22-9618&alias=wn-1.novalocal&noUDP&sock=startd_1843_5c2e>"
SlotType = "Partitionable"
State = "Unclaimed"
Activity = "Idle"
Cpus = 2
TotalSlotCpus = 2
TotalCpus = 2.0
Memory = 1800
Disk = 9000000
Arch = "X86_64"
OpSys = "LINUX"
StartdIpAddr = "<10.0.0.22:9618?addrs=10.0.0.22-9618&alias=wn-1.novalocal&noUDP&sock=startd_1843_5c2e>"
CondorVersion = "$CondorVersion: 24.0.3 2024-12-19 BuildID: 773114 PackageID: 24.0.3-1 GitSHA: 2c3f4e7 $"
