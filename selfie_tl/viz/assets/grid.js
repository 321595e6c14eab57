(function(){
 var root=document.getElementById("__STL_VIEW_ID__"); if(!root) return;
 var detail=root.querySelector(".stl-detail"), pinned=null, initial=detail.innerHTML;
 function show(cell){detail.innerHTML=cell.querySelector(".stl-full").innerHTML;}
 root.querySelectorAll("td.stl-cell").forEach(function(cell){
  cell.addEventListener("mouseenter",function(){if(!pinned) show(cell);});
  cell.addEventListener("focus",function(){if(!pinned) show(cell);});
  cell.addEventListener("mouseleave",function(){if(!pinned) detail.innerHTML=initial;});
  cell.addEventListener("click",function(){
   if(pinned) pinned.classList.remove("stl-pinned");
   if(pinned===cell){pinned=null; show(cell); return;}
   pinned=cell; cell.classList.add("stl-pinned"); show(cell);});
  cell.addEventListener("keydown",function(e){if(e.key==="Enter"||e.key===" "){e.preventDefault();cell.click();}});
 });
})();
